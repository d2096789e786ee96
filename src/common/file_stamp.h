#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace portcullis {

// Identity of a file's current content as cheaply as stat allows; a change in any field
// (including a new inode from an atomic rename, the Kubernetes secret pattern) is a change.
// A file that cannot be stat'ed has the default stamp, so its appearance is a change too.
struct FileStamp {
  std::int64_t mtime_ns = -1;
  std::int64_t size = -1;
  std::uint64_t inode = 0;
  bool operator==(const FileStamp&) const = default;

  static FileStamp of(const std::string& path);
};

// A file a policy was built from, stamped just before it was read: a write that lands
// while (or after) the compiler reads it leaves the file different from this stamp, so the
// watcher sees it on its next look instead of folding it into the policy it just loaded.
//
// One write the stamp cannot see: an in-place rewrite of the same size within the
// filesystem's timestamp tick of the write before it (the mtime does not move). A file
// modified that recently when it was read is `racy` (git's "racily clean" index entries are
// the same problem): the watcher compares its content with `content_hash` until its mtime
// is more than kRacyWindow old, after which any new write moves the mtime.
struct WatchedFile {
  static constexpr std::int64_t kRacyWindowNs = 2'000'000'000;  // ≥ any filesystem's tick

  std::string path;
  FileStamp stamp;
  std::uint64_t content_hash = 0;  // of the bytes read; 0 when the file could not be read
  bool racy = false;

  // Stamps `path`, then reads it: the file as the compiler saw it, and its bytes (nullopt
  // when it cannot be read; it is watched all the same, so its appearance is a change).
  static std::pair<WatchedFile, std::optional<std::string>> read(const std::string& path);
  // True when the file at `path` is not what this records; clears `racy` once the window
  // has passed with the content unchanged. Updates the stamp to the current one.
  bool changed();
};

std::uint64_t contentHash(std::string_view bytes);

}  // namespace portcullis
