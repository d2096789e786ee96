// The YAML reader (config/yaml_reader.cc) on its own: located errors, maps that know their
// keys, typed readers and secret references, without a whole policy around them.
#include "config/yaml_reader.h"

#include <cstdlib>

#include <gtest/gtest.h>

#include "support/fixtures.h"

namespace portcullis::config {
namespace {

using portcullis::testing::TempDir;

// The errors as "FILE:LINE:COL: message", one per line.
std::string errors(Diagnostics& diag) {
  std::string out;
  for (const auto& e : diag.errors())
    out += e.toString() + "\n";
  return out;
}

TEST(ConfigErrorTest, FormatsWithAndWithoutLineAndColumn) {
  EXPECT_EQ((ConfigError{"p.yaml", 3, 7, "bad"}).toString(), "p.yaml:3:7: bad");
  EXPECT_EQ((ConfigError{"f.lua", 12, 0, "syntax"}).toString(), "f.lua:12: syntax");
  EXPECT_EQ((ConfigError{"p.yaml", 0, 0, "cannot read"}).toString(), "p.yaml: cannot read");
}

TEST(DiagnosticsTest, ErrorsAreLocatedAtTheirNode) {
  Diagnostics diag("p.yaml");
  const YAML::Node root = YAML::Load("a: 1\nb:\n  c: [x, y]\n");
  diag.error(root["b"]["c"][1], "not y");
  diag.fileError("whole file");
  diag.sourceError("f.lua", 4, "in a function");
  diag.error(YAML::Node(), "no mark");  // a node built in code has no place in the file
  EXPECT_FALSE(diag.ok());
  EXPECT_EQ(errors(diag),
            "p.yaml:3:10: not y\np.yaml: whole file\nf.lua:4: in a function\n"
            "p.yaml: no mark\n");
}

TEST(DiagnosticsTest, PathsAreRelativeToTheConfigFile) {
  Diagnostics diag("/etc/portcullis/policy.yaml");
  EXPECT_EQ(diag.resolvePath("keys/a.json"), "/etc/portcullis/keys/a.json");
  EXPECT_EQ(diag.resolvePath("../b.json"), "/etc/b.json");
  EXPECT_EQ(diag.resolvePath("/abs/c.json"), "/abs/c.json");
}

TEST(DiagnosticsTest, SecretsFromEnvironmentAndFilesJoinTheHash) {
  TempDir dir;
  dir.write("secret", "from-a-file\n");
  ::setenv("PORTCULLIS_TEST_READER_SECRET", "from-env", 1);
  Diagnostics diag(dir.path() + "/p.yaml");
  const YAML::Node node = YAML::Load("x");
  const std::string before = diag.contentHash();
  EXPECT_EQ(diag.resolveSecrets(node, "a ${env:PORTCULLIS_TEST_READER_SECRET} b"), "a from-env b");
  EXPECT_EQ(diag.resolveSecrets(node, "${file:secret}"), "from-a-file");
  EXPECT_EQ(diag.resolveSecrets(node, "${claims.sub} stays"), "${claims.sub} stays");
  EXPECT_NE(diag.contentHash(), before);
  ASSERT_EQ(diag.files().size(), 1u);
  EXPECT_EQ(diag.files()[0].path, dir.path() + "/secret");
  EXPECT_EQ(diag.files()[0].stamp, FileStamp::of(dir.path() + "/secret"));
  EXPECT_TRUE(diag.ok()) << errors(diag);

  EXPECT_FALSE(diag.resolveSecrets(node, "${env:PORTCULLIS_TEST_READER_UNSET}"));
  EXPECT_FALSE(diag.resolveSecrets(node, "${env:}"));
  EXPECT_FALSE(diag.resolveSecrets(node, "${file:absent"));
  EXPECT_FALSE(diag.resolveSecrets(node, "${file:absent}"));
  const std::string e = errors(diag);
  EXPECT_NE(e.find("environment variable PORTCULLIS_TEST_READER_UNSET is not set"),
            std::string::npos)
      << e;
  EXPECT_NE(e.find("${env:} needs a variable name"), std::string::npos) << e;
  EXPECT_NE(e.find("unterminated '${' in value"), std::string::npos) << e;
  EXPECT_NE(e.find("cannot read file '" + dir.path() + "/absent'"), std::string::npos) << e;
}

TEST(MapReaderTest, UnknownDuplicateAndUnsupportedKeys) {
  Diagnostics diag("p.yaml");
  const YAML::Node node = YAML::Load("a: 1\nb: 2\na: 3\nlater: x\nzz: 4\n");
  {
    MapReader map(diag, node, "things");
    ASSERT_TRUE(map.valid());
    EXPECT_EQ(map.get("b").Scalar(), "2");
    EXPECT_FALSE(map.get("absent").IsDefined());
    (void)map.get("a");
    map.unsupported({"later", "never"}, "not yet");
  }  // the unknown keys are reported when the reader goes
  EXPECT_EQ(errors(diag),
            "p.yaml:3:1: duplicate key 'a' in things\n"
            "p.yaml:4:1: 'later' in things is not supported yet: not yet\n"
            "p.yaml:5:1: unknown key 'zz' in things (known keys: a, absent, b, later, never)\n");
}

TEST(MapReaderTest, AbsentIsEmptyAndAScalarIsAnError) {
  Diagnostics diag("p.yaml");
  {
    MapReader absent(diag, YAML::Node(), "absent");
    EXPECT_TRUE(absent.valid());
    EXPECT_FALSE(absent.get("x").IsDefined());
  }
  const YAML::Node root = YAML::Load("limits: 5\n");
  MapReader scalar(diag, root["limits"], "limits");
  EXPECT_FALSE(scalar.valid());
  EXPECT_EQ(errors(diag), "p.yaml:1:9: limits must be a mapping\n");
}

TEST(ReadersTest, TypedValuesAndTheirErrors) {
  Diagnostics diag("p.yaml");
  const YAML::Node n =
      YAML::Load("{s: text, b: true, i: 42, d: 250ms, z: 8KiB, l: [a, b], one: a, c: nginx}");
  EXPECT_EQ(readString(diag, n["s"], "s"), "text");
  EXPECT_EQ(readBool(diag, n["b"], "b"), true);
  EXPECT_EQ(readInt(diag, n["i"], "i", 1, 100), 42);
  EXPECT_EQ(readDuration(diag, n["d"], "d"), std::chrono::milliseconds(250));
  EXPECT_EQ(readSize(diag, n["z"], "z"), 8u * 1024);
  EXPECT_EQ(readStringList(diag, n["l"], "l"), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(readStringList(diag, n["one"], "one"), std::vector<std::string>{"a"});
  EXPECT_EQ(readChoice(diag, n["c"], "style", {"auto", "nginx"}), "nginx");
  EXPECT_TRUE(diag.ok()) << errors(diag);

  const YAML::Node bad =
      YAML::Load("s: [x]\nb: yes\ni: 101\nd: 5 parsecs\nz: lots\nl: {a: 1}\nc: apache\n");
  EXPECT_FALSE(readString(diag, bad["s"], "s"));
  EXPECT_FALSE(readBool(diag, bad["b"], "b"));
  EXPECT_FALSE(readInt(diag, bad["i"], "i", 1, 100));
  EXPECT_FALSE(readDuration(diag, bad["d"], "d"));
  EXPECT_FALSE(readSize(diag, bad["z"], "z"));
  EXPECT_FALSE(readStringList(diag, bad["l"], "l"));
  EXPECT_FALSE(readChoice(diag, bad["c"], "style", {"auto", "nginx"}));
  EXPECT_EQ(errors(diag),
            "p.yaml:1:4: s must be a string\n"
            "p.yaml:2:4: b must be true or false\n"
            "p.yaml:3:4: i must be an integer from 1 to 100\n"
            "p.yaml:4:4: d must be a duration such as 250ms, 5s, 2m or 1h\n"
            "p.yaml:5:4: z must be a size such as 8KiB or 64MiB\n"
            "p.yaml:6:4: l must be a list of strings\n"
            "p.yaml:7:4: style must be one of: auto, nginx\n");
}

TEST(ReadersTest, KeyReadersLeaveAbsentKeysAlone) {
  Diagnostics diag("p.yaml");
  const YAML::Node n = YAML::Load("{t: 2s, n: 7, bad: x}");
  MapReader map(diag, n, "m");
  std::chrono::milliseconds t{5};
  std::chrono::milliseconds untouched{5};
  readMillis(diag, map, "t", "m.t", t);
  readMillis(diag, map, "absent", "m.absent", untouched);
  EXPECT_EQ(t, std::chrono::seconds(2));
  EXPECT_EQ(untouched, std::chrono::milliseconds(5));
  bool ok = true;
  EXPECT_EQ(readIntKey(diag, map, "n", "m", 1, 10, ok), 7);
  EXPECT_EQ(readIntKey(diag, map, "none", "m", 1, 10, ok), std::nullopt);
  EXPECT_TRUE(ok);
  EXPECT_EQ(readIntKey(diag, map, "bad", "m", 1, 10, ok), std::nullopt);
  EXPECT_FALSE(ok);
  EXPECT_NE(errors(diag).find("m.bad must be an integer from 1 to 10"), std::string::npos)
      << errors(diag);
}

TEST(ReadersTest, NetworksAreLocatedEntryByEntry) {
  Diagnostics diag("p.yaml");
  const YAML::Node n = YAML::Load("nets: [10.0.0.0/8, nowhere, '::1']\none: 192.168.1.1\n");
  const auto nets = readNetworks(diag, n["nets"], "trusted");
  EXPECT_EQ(nets.size(), 2u);
  EXPECT_EQ(readNetworks(diag, n["one"], "one").size(), 1u);
  EXPECT_EQ(errors(diag), "p.yaml:1:20: trusted: 'nowhere' is not an address or CIDR network\n");
}

TEST(ReadersTest, HeaderNamesAreTokens) {
  EXPECT_TRUE(validHeaderName("X-Tenant"));
  EXPECT_TRUE(validHeaderName("x_a.b~c!"));
  EXPECT_FALSE(validHeaderName(""));
  EXPECT_FALSE(validHeaderName("Bad Header"));
  EXPECT_FALSE(validHeaderName("x:y"));
  EXPECT_FALSE(validHeaderName("é"));
}

}  // namespace
}  // namespace portcullis::config
