#include "common/ip.h"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>

namespace portcullis {

std::optional<IpAddress> IpAddress::parse(std::string_view text) {
  if (text.empty() || text.size() >= INET6_ADDRSTRLEN) return std::nullopt;
  char buf[INET6_ADDRSTRLEN];
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  IpAddress ip;
  if (inet_pton(AF_INET, buf, ip.bytes_.data()) == 1) {
    ip.family_ = 4;
    return ip;
  }
  if (inet_pton(AF_INET6, buf, ip.bytes_.data()) == 1) {
    static constexpr std::uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (std::memcmp(ip.bytes_.data(), kMapped, sizeof kMapped) == 0) {
      std::memmove(ip.bytes_.data(), ip.bytes_.data() + 12, 4);
      std::memset(ip.bytes_.data() + 4, 0, 12);
      ip.family_ = 4;
    } else {
      ip.family_ = 6;
    }
    return ip;
  }
  return std::nullopt;
}

IpAddress IpAddress::v4(std::uint32_t host_order) {
  IpAddress ip;
  ip.family_ = 4;
  ip.bytes_[0] = static_cast<std::uint8_t>(host_order >> 24);
  ip.bytes_[1] = static_cast<std::uint8_t>(host_order >> 16);
  ip.bytes_[2] = static_cast<std::uint8_t>(host_order >> 8);
  ip.bytes_[3] = static_cast<std::uint8_t>(host_order);
  return ip;
}

IpAddress IpAddress::v6(const std::uint8_t* bytes16) {
  static constexpr std::uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  IpAddress ip;
  if (std::memcmp(bytes16, kMapped, sizeof kMapped) == 0) {
    std::memcpy(ip.bytes_.data(), bytes16 + 12, 4);
    ip.family_ = 4;
  } else {
    std::memcpy(ip.bytes_.data(), bytes16, 16);
    ip.family_ = 6;
  }
  return ip;
}

std::string IpAddress::toString() const {
  char buf[INET6_ADDRSTRLEN] = {};
  if (family_ == 4) {
    // Dotted decimal by hand: inet_ntop goes through sprintf, and every proxied request
    // formats its client's address several times (forwarding fields, audit).
    char* out = buf;
    for (std::size_t i = 0; i < 4; ++i) {
      if (i > 0) *out++ = '.';
      out = std::to_chars(out, buf + sizeof buf, bytes_[i]).ptr;
    }
    return std::string(buf, out);
  }
  if (family_ == 6) {
    inet_ntop(AF_INET6, bytes_.data(), buf, sizeof buf);
  }
  return buf;
}

std::optional<Cidr> Cidr::parse(std::string_view text) {
  const std::size_t slash = text.find('/');
  const auto ip = IpAddress::parse(text.substr(0, slash));
  if (!ip) return std::nullopt;
  const int max = ip->isV4() ? 32 : 128;
  int prefix = max;
  if (slash != std::string_view::npos) {
    const std::string_view digits = text.substr(slash + 1);
    const auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), prefix);
    if (ec != std::errc() || ptr != digits.data() + digits.size() || digits.empty() || prefix < 0 ||
        prefix > max) {
      return std::nullopt;
    }
  }
  Cidr cidr;
  cidr.base_ = *ip;
  cidr.prefix_ = prefix;
  return cidr;
}

bool IpAddress::isLoopback() const {
  if (family_ == 4) return bytes_[0] == 127;
  if (family_ != 6) return false;
  for (std::size_t i = 0; i < 15; ++i) {
    if (bytes_[i] != 0) return false;
  }
  return bytes_[15] == 1;
}

bool Cidr::contains(const IpAddress& ip) const {
  if (!ip.valid() || ip.isV4() != base_.isV4()) return false;
  const auto& a = ip.bytes();
  const auto& b = base_.bytes();
  const int full = prefix_ / 8;
  if (std::memcmp(a.data(), b.data(), static_cast<std::size_t>(full)) != 0) return false;
  const int rest = prefix_ % 8;
  if (rest == 0) return true;
  const auto mask = static_cast<std::uint8_t>(0xff << (8 - rest));
  return (a[full] & mask) == (b[full] & mask);
}

std::string Cidr::toString() const {
  return base_.toString() + "/" + std::to_string(prefix_);
}

}  // namespace portcullis

namespace portcullis {

std::optional<HostPort> parseHostPort(std::string_view text) {
  const std::size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) return std::nullopt;
  std::string_view host = text.substr(0, colon);
  const std::string_view port_text = text.substr(colon + 1);
  unsigned port = 0;
  const auto [ptr, ec] =
      std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc() || ptr != port_text.data() + port_text.size() || port_text.empty() ||
      port > 65535) {
    return std::nullopt;
  }
  HostPort hp;
  hp.port = static_cast<std::uint16_t>(port);
  if (host == "localhost") {
    hp.ip = IpAddress::v4(0x7f000001);
  } else if (host == "*" || host.empty()) {
    hp.ip = IpAddress::v4(0);
  } else {
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
      host = host.substr(1, host.size() - 2);
    }
    const auto ip = IpAddress::parse(host);
    if (!ip) return std::nullopt;
    hp.ip = *ip;
  }
  return hp;
}

std::optional<std::string> parseUnixAddress(std::string_view text) {
  constexpr std::string_view kScheme = "unix:";
  constexpr std::size_t kMaxPath = 107;  // sizeof(sockaddr_un::sun_path) - 1 on Linux
  if (!text.starts_with(kScheme)) return std::nullopt;
  const std::string_view path = text.substr(kScheme.size());
  if (!path.starts_with('/') || path.size() < 2 || path.size() > kMaxPath ||
      path.find('\0') != std::string_view::npos) {
    return std::nullopt;
  }
  return std::string(path);
}

std::string HostPort::toString() const {
  return (ip.isV4() ? ip.toString() : "[" + ip.toString() + "]") + ":" + std::to_string(port);
}

}  // namespace portcullis
