#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace portcullis {

// An IPv4 or IPv6 address. IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) are normalised
// to IPv4 so that one client has one spelling in networks, audit and rate-limit keys.
class IpAddress final {
 public:
  IpAddress() = default;
  static std::optional<IpAddress> parse(std::string_view text);
  static IpAddress v4(std::uint32_t host_order);
  // From 16 network-order bytes; an IPv4-mapped address becomes IPv4.
  static IpAddress v6(const std::uint8_t* bytes16);

  bool valid() const { return family_ != 0; }
  bool isLoopback() const;  // 127.0.0.0/8 or ::1
  bool isV4() const { return family_ == 4; }
  const std::array<std::uint8_t, 16>& bytes() const { return bytes_; }  // v4 uses the first 4
  std::string toString() const;
  bool operator==(const IpAddress&) const = default;

 private:
  std::uint8_t family_ = 0;  // 0 = none, 4, 6
  std::array<std::uint8_t, 16> bytes_{};
};

// A network in CIDR notation; a bare address is a /32 or /128.
class Cidr final {
 public:
  static std::optional<Cidr> parse(std::string_view text);
  bool contains(const IpAddress& ip) const;
  std::string toString() const;

 private:
  IpAddress base_;
  int prefix_ = 0;
};

}  // namespace portcullis

namespace portcullis {

// A listener address: `IP:PORT`, `[IPv6]:PORT`, `localhost:PORT` (127.0.0.1) or `*:PORT`
// (all IPv4 interfaces). Port 0 asks the kernel for a free port.
struct HostPort {
  IpAddress ip;
  std::uint16_t port = 0;
  std::string toString() const;
};
std::optional<HostPort> parseHostPort(std::string_view text);

// A unix-socket listener address, `unix:/absolute/path`: the path, or nullopt when `text`
// is not one (not absolute, empty, or longer than sockaddr_un allows).
std::optional<std::string> parseUnixAddress(std::string_view text);

}  // namespace portcullis
