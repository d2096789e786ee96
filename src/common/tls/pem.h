#pragma once

// Reading PEM text from memory with OpenSSL, for server_tls.cc and client_tls.cc.

#include <memory>
#include <string>

#include <openssl/bio.h>
#include <openssl/err.h>

namespace portcullis::tls {

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
using Bio = std::unique_ptr<BIO, BioFree>;

// A read-only BIO over `bytes` (which must outlive it).
inline Bio memoryBio(const std::string& bytes) {
  return Bio(BIO_new_mem_buf(bytes.data(), static_cast<int>(bytes.size())));
}

// The passphrase callback of every PEM read: none, so an encrypted key fails instead of
// OpenSSL's default prompting on the terminal.
inline int noPassphrase(char*, int, int, void*) {
  return 0;
}

// OpenSSL's reason for the last failure, and the thread's error queue cleared.
inline std::string lastError() {
  const unsigned long code = ERR_peek_last_error();
  ERR_clear_error();
  if (code == 0) return "unknown error";
  const char* reason = ERR_reason_error_string(code);
  return reason != nullptr ? reason : "unknown error";
}

}  // namespace portcullis::tls
