#pragma once

#include <cstdint>
#include <string>

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
struct WatchedFile {
  std::string path;
  FileStamp stamp;
  bool operator==(const WatchedFile&) const = default;
};

}  // namespace portcullis
