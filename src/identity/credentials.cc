#include "identity/credentials.h"

#include "identity/provider.h"

namespace portcullis::identity {

Credentials Credentials::read(std::span<const Provider* const> providers,
                              const http::Request& request) {
  Credentials out;
  for (const Provider* provider : providers) {
    const Found found{provider, provider->credential(request)};
    if (out.size_ < kInline) {
      out.inline_[out.size_] = found;
    } else {
      out.more_.push_back(found);
    }
    ++out.size_;
  }
  return out;
}

std::string_view Credentials::of(std::string_view provider) const {
  for (std::size_t i = 0; i < size_; ++i) {
    const Found& found = entry(i);
    if (found.provider->name() == provider) return found.value;
  }
  return {};
}

}  // namespace portcullis::identity
