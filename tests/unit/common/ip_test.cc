#include "common/ip.h"

#include <gtest/gtest.h>

namespace portcullis {
namespace {

TEST(IpAddressTest, ParsesBothFamiliesAndNormalisesMappedV4) {
  EXPECT_EQ(IpAddress::parse("10.1.2.3")->toString(), "10.1.2.3");
  EXPECT_EQ(IpAddress::parse("0.0.0.0")->toString(), "0.0.0.0");
  EXPECT_EQ(IpAddress::parse("255.255.255.255")->toString(), "255.255.255.255");
  EXPECT_EQ(IpAddress::v4(0x7f000001).toString(), "127.0.0.1");
  EXPECT_EQ(IpAddress::parse("192.168.100.9")->toString(), "192.168.100.9");
  EXPECT_EQ(IpAddress::parse("::1")->toString(), "::1");
  const auto mapped = IpAddress::parse("::ffff:10.1.2.3");
  ASSERT_TRUE(mapped);
  EXPECT_TRUE(mapped->isV4());
  EXPECT_EQ(*mapped, *IpAddress::parse("10.1.2.3"));
  for (const char* bad : {"", "10.1.2", "10.1.2.256", "host", "1.2.3.4 ", "::g",
                          "1111111111111111111111111111111111111111111111111111"}) {
    EXPECT_FALSE(IpAddress::parse(bad).has_value()) << bad;
  }
}

TEST(CidrTest, Contains) {
  const auto net = Cidr::parse("10.0.0.0/8");
  ASSERT_TRUE(net);
  EXPECT_TRUE(net->contains(*IpAddress::parse("10.255.1.2")));
  EXPECT_FALSE(net->contains(*IpAddress::parse("11.0.0.1")));
  EXPECT_FALSE(net->contains(*IpAddress::parse("::1")));
  EXPECT_TRUE(Cidr::parse("127.0.0.1")->contains(*IpAddress::parse("127.0.0.1")));
  EXPECT_FALSE(Cidr::parse("127.0.0.1")->contains(*IpAddress::parse("127.0.0.2")));
  EXPECT_TRUE(Cidr::parse("10.1.2.0/23")->contains(*IpAddress::parse("10.1.3.9")));
  EXPECT_FALSE(Cidr::parse("10.1.2.0/23")->contains(*IpAddress::parse("10.1.4.0")));
  EXPECT_TRUE(Cidr::parse("0.0.0.0/0")->contains(*IpAddress::parse("8.8.8.8")));
  EXPECT_TRUE(Cidr::parse("fd00::/8")->contains(*IpAddress::parse("fd12::1")));
  EXPECT_FALSE(Cidr::parse("10.0.0.0/33").has_value());
  EXPECT_FALSE(Cidr::parse("10.0.0.0/").has_value());
  EXPECT_FALSE(Cidr::parse("10.0.0.0/-1").has_value());
}

TEST(HostPortTest, Forms) {
  EXPECT_EQ(parseHostPort("127.0.0.1:9191")->toString(), "127.0.0.1:9191");
  EXPECT_EQ(parseHostPort("localhost:80")->toString(), "127.0.0.1:80");
  EXPECT_EQ(parseHostPort("*:8080")->toString(), "0.0.0.0:8080");
  EXPECT_EQ(parseHostPort("[::1]:0")->toString(), "[::1]:0");
  EXPECT_FALSE(parseHostPort("127.0.0.1").has_value());
  EXPECT_FALSE(parseHostPort("127.0.0.1:99999").has_value());
  EXPECT_FALSE(parseHostPort("example.com:80").has_value());
}

}  // namespace
}  // namespace portcullis
