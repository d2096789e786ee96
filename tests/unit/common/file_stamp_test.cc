// File stamps and the watched-file check the reloader runs on every look.
#include "common/file_stamp.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <filesystem>

#include "support/fixtures.h"

namespace portcullis {
namespace {

using portcullis::testing::TempDir;

TEST(FileStampTest, AMissingFileHasTheDefaultStamp) {
  TempDir dir;
  EXPECT_EQ(FileStamp::of(dir.path() + "/absent"), FileStamp{});
  const std::string p = dir.write("f", "abc");
  const FileStamp s = FileStamp::of(p);
  EXPECT_EQ(s.size, 3);
  EXPECT_NE(s, FileStamp{});
}

TEST(WatchedFileTest, ReadRecordsTheBytesItReturns) {
  TempDir dir;
  const std::string p = dir.write("f", "version: 1\n");
  auto [file, bytes] = WatchedFile::read(p);
  ASSERT_TRUE(bytes);
  EXPECT_EQ(*bytes, "version: 1\n");
  EXPECT_EQ(file.path, p);
  EXPECT_EQ(file.stamp, FileStamp::of(p));
  EXPECT_EQ(file.content_hash, contentHash("version: 1\n"));
  EXPECT_TRUE(file.racy);  // written just now
  EXPECT_FALSE(file.changed());
}

TEST(WatchedFileTest, EveryKindOfWriteIsAChange) {
  TempDir dir;
  const std::string p = dir.write("f", "aaaa");
  auto file = WatchedFile::read(p).first;

  dir.write("f", "bbbb");                                  // same size, same inode
  ASSERT_TRUE(testing::setMtime(p, file.stamp.mtime_ns));  // and the same mtime
  ASSERT_EQ(FileStamp::of(p), file.stamp);
  EXPECT_TRUE(file.changed());   // the content tells
  EXPECT_FALSE(file.changed());  // seen once

  file = WatchedFile::read(p).first;
  dir.write("f", "longer");
  EXPECT_TRUE(file.changed());

  file = WatchedFile::read(p).first;
  dir.write("g", "cccccc");
  ASSERT_EQ(std::rename((dir.path() + "/g").c_str(), p.c_str()), 0);  // a new inode
  EXPECT_TRUE(file.changed());

  file = WatchedFile::read(p).first;
  ASSERT_EQ(std::remove(p.c_str()), 0);
  EXPECT_TRUE(file.changed());
  EXPECT_FALSE(file.changed());
  dir.write("f", "back");
  EXPECT_TRUE(file.changed());
}

TEST(WatchedFileTest, AnUnreadableFileIsWatchedForItsAppearance) {
  TempDir dir;
  auto [file, bytes] = WatchedFile::read(dir.path() + "/later");
  EXPECT_FALSE(bytes);
  EXPECT_EQ(file.content_hash, 0u);
  EXPECT_FALSE(file.changed());
  dir.write("later", "x");
  EXPECT_TRUE(file.changed());
}

// A file last written more than the window before it is read needs no content check: any
// later write moves its mtime. A racy one stops being checked once the window has passed.
TEST(WatchedFileTest, OnlyRecentlyWrittenFilesAreComparedByContent) {
  TempDir dir;
  const std::string p = dir.write("f", "old");
  std::filesystem::last_write_time(
      p, std::filesystem::file_time_type::clock::now() - std::chrono::seconds(10));
  EXPECT_FALSE(WatchedFile::read(p).first.racy);

  WatchedFile file{p, FileStamp::of(p), contentHash("old"), /*racy=*/true};
  EXPECT_FALSE(file.changed());  // same content; and the mtime is 10 s old: the window passed
  EXPECT_FALSE(file.racy);
}

}  // namespace
}  // namespace portcullis
