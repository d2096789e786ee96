#include "common/file_stamp.h"

#include <sys/stat.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <sstream>

namespace portcullis {
namespace {

std::int64_t wallClockNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::optional<std::string> readAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream buf;
  buf << in.rdbuf();
  return std::move(buf).str();
}

}  // namespace

FileStamp FileStamp::of(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return {};
  return FileStamp{
      static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec,
      static_cast<std::int64_t>(st.st_size), static_cast<std::uint64_t>(st.st_ino)};
}

std::uint64_t contentHash(std::string_view bytes) {
  return std::hash<std::string_view>{}(bytes) | 1;  // never 0: 0 is "could not be read"
}

std::pair<WatchedFile, std::optional<std::string>> WatchedFile::read(const std::string& path) {
  WatchedFile file{path, FileStamp::of(path)};
  const std::int64_t now = wallClockNs();
  auto bytes = readAll(path);
  if (bytes) file.content_hash = contentHash(*bytes);
  file.racy = file.stamp.mtime_ns >= 0 && now - file.stamp.mtime_ns < kRacyWindowNs;
  return {std::move(file), std::move(bytes)};
}

bool WatchedFile::changed() {
  const FileStamp now = FileStamp::of(path);
  if (!(now == stamp)) {
    stamp = now;
    racy = false;
    return true;
  }
  if (!racy) return false;
  const std::int64_t looked_at = wallClockNs();
  const auto bytes = readAll(path);
  if ((bytes ? contentHash(*bytes) : 0) != content_hash) {
    racy = false;
    return true;
  }
  if (looked_at - stamp.mtime_ns >= kRacyWindowNs) racy = false;
  return false;
}

}  // namespace portcullis
