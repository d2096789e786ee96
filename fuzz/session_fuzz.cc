// libFuzzer target: the browser session codec (identity/session/sealed_cookie.h) — a
// session cookie comes back from the browser, so every byte of it is the attacker's.
//   build-fuzz/fuzz/session_fuzz CORPUS_DIR   (seeds: fuzz/corpus/session)
//
// Two modes, by the first byte of the input:
//   'F' (flips): a session of a size the second byte chooses is sealed with the target's
//       key, split into cookies as a browser would keep them, and the rest of the input
//       says which bytes of those cookie values to XOR with what. Invariant: the session
//       opens exactly when nothing changed, and then holds what was sealed.
//   anything else (raw): the input, split at '\n', is the cookie values NAME, NAME-1 … of
//       another cookie name than flip mode seals for, so even a value libFuzzer copied out of
//       flip mode (it learns what the code compares) may not open. Invariant: it never
//       opens (that would be a forgery, or a value moved from another cookie).
// Besides crashes, leaks and UB, a broken invariant aborts.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "identity/session/sealed_cookie.h"

namespace {

using portcullis::identity::session::CookieSealer;
using portcullis::identity::session::pieceName;

constexpr std::string_view kFlipName = "__Host-flip";  // what flip mode seals for
constexpr std::string_view kRawName = "__Host-portcullis";

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "invariant broken: %s\n", what);
    std::abort();
  }
}

const CookieSealer& sealer() {
  static const CookieSealer s = *CookieSealer::make({std::string(32, 'k'), std::string(32, 'o')});
  return s;
}

bool opens(std::string_view name, const std::vector<std::string>& values, std::string* plaintext) {
  std::map<std::string, std::string, std::less<>> jar;
  for (std::size_t i = 0; i < values.size(); ++i)
    jar[pieceName(name, i)] = values[i];
  const auto opened = sealer().open(name, [&](std::string_view n) -> std::string_view {
    const auto it = jar.find(n);
    return it == jar.end() ? std::string_view() : std::string_view(it->second);
  });
  if (opened && plaintext != nullptr) *plaintext = *opened;
  return opened.has_value();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  if (!in.empty() && in[0] == 'F') {
    const std::size_t length = in.size() > 1 ? static_cast<unsigned char>(in[1]) * 40u : 0;
    std::string session(length, '\0');
    for (std::size_t i = 0; i < length; ++i)
      session[i] = static_cast<char>('a' + i % 26);
    const auto sealed = sealer().seal(kFlipName, session);
    check(sealed.has_value(), "a session of at most 10 KiB could not be sealed");
    std::vector<std::string> values = *sealed;
    bool changed = false;
    for (std::size_t i = 2; i + 2 < in.size(); i += 3) {  // (piece, position, mask) triples
      std::string& v = values[static_cast<unsigned char>(in[i]) % values.size()];
      if (v.empty()) continue;
      const auto mask = static_cast<char>(in[i + 2]);
      v[static_cast<unsigned char>(in[i + 1]) * 17u % v.size()] ^= mask;
      changed |= mask != 0;
    }
    if (changed) changed = values != *sealed;  // two flips of one byte may cancel out
    std::string opened;
    const bool ok = opens(kFlipName, values, &opened);
    check(ok == !changed, changed ? "a changed session opened" : "an intact session did not open");
    if (ok) check(opened == session, "a session opened to something else");
    return 0;
  }
  std::vector<std::string> values;
  std::size_t start = 0;
  while (start <= in.size() && values.size() < 10) {
    const std::size_t end = std::min(in.find('\n', start), in.size());
    values.emplace_back(in.substr(start, end - start));
    start = end + 1;
  }
  check(!opens(kRawName, values, nullptr), "raw bytes opened as a session: a forgery");
  return 0;
}
