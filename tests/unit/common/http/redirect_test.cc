#include "common/http/redirect.h"

#include <gtest/gtest.h>

namespace portcullis::http {
namespace {

RedirectPolicy policy() {
  RedirectPolicy p;
  p.hosts = {"app.example.com", ".corp.example", "admin.example.com:8443"};
  return p;
}

bool safe(std::string_view target, const RedirectPolicy& p = policy()) {
  return safeRedirect(target, p).has_value();
}

TEST(SafeRedirectTest, PathsOnThisSiteAndListedHostsPass) {
  for (const char* ok :
       {"/", "/orders", "/orders/7?tab=items#top", "/a%2Fb", "/search?q=//x",
        "https://app.example.com/", "https://APP.example.com/x?y=1", "https://app.example.com",
        "https://app.example.com:443/x", "https://corp.example/", "https://wiki.corp.example/page",
        "https://a.b.corp.example/", "https://admin.example.com:8443/"}) {
    EXPECT_TRUE(safe(ok)) << ok;
    EXPECT_EQ(*safeRedirect(ok, policy()), ok) << "passed on unchanged";
  }
}

// The shapes open-redirect filters have been bypassed with (OWASP, PortSwigger, the
// oauth2-proxy and Pomerium advisories): every one is refused.
TEST(SafeRedirectTest, RefusesEveryOpenRedirectShape) {
  for (const char* bad : {
           "//evil.com",                                // scheme-relative
           "///evil.com",                               // more slashes
           "/\\evil.com",                               // browsers read '\' as '/'
           "\\\\evil.com",                              //
           "/%2F%2Fevil.com",                           // decoded by a second reader
           "/%2f/evil.com",                             //
           "/%5Cevil.com",                              // an encoded backslash
           "/%252F%252Fevil.com",                       // encoded twice
           "https:evil.com",                            // no authority marker
           "https:/evil.com",                           //
           "https://evil.com",                          // not listed
           "https://evil.com/https://app.example.com",  //
           "https://app.example.com@evil.com",          // userinfo
           "https://app.example.com:443@evil.com",      //
           "https://evil.com#@app.example.com",         // the fragment is not the host
           "https://evil.com?@app.example.com",         //
           "https://app.example.com.evil.com",          // a listed name as a prefix
           "https://evilapp.example.com",               // a suffix that is not a label
           "https://notcorp.example",                   // ".corp.example" needs a dot before
           "https://app.example.com:8443/",             // another port than listed
           "https://admin.example.com/",                // listed only with its port
           "http://app.example.com/",                   // http is off
           "javascript:alert(1)",                       // other schemes
           "JaVaScRiPt:alert(1)",                       //
           "data:text/html,<script>alert(1)</script>",
           "java\tscript:alert(1)",               // browsers drop tabs inside URLs
           "/\t/evil.com",                        //
           "/\n/evil.com",                        //
           " /orders",                            // leading space
           "https://app.example.com\\@evil.com",  // a backslash before userinfo
           "https://xn--80ak6aa92e.com",          // not listed, punycode or not
           "https://аpp.example.com",             // Cyrillic 'а': not a DNS name as sent
           "https://app.example.com./",           // a trailing dot
           "https://app..example.com/",           //
           "evil.com",                            // no scheme, no leading '/'
           "",                                    //
       }) {
    EXPECT_FALSE(safe(bad)) << bad;
  }
}

TEST(SafeRedirectTest, HttpOnlyWhenAllowed) {
  RedirectPolicy p = policy();
  p.allow_http = true;
  EXPECT_TRUE(safe("http://app.example.com/", p));
  EXPECT_TRUE(safe("http://app.example.com:80/", p));
  EXPECT_FALSE(safe("http://evil.com/", p));
  EXPECT_FALSE(safe("ftp://app.example.com/", p));
}

}  // namespace
}  // namespace portcullis::http
