// Small POSIX file helpers with Argent errors.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace argent {

// Reads a whole file; throws Error(kIo) naming the path when it cannot.
std::vector<uint8_t> read_whole_file(const std::string& path);

// Writes `path` atomically: bytes go to "path.tmp", which is fsync'ed and renamed over `path`,
// and the directory is fsync'ed, so a crash leaves either the old file or the new one.
// Destroying an uncommitted writer removes the temporary file.
class AtomicFileWriter {
 public:
  explicit AtomicFileWriter(const std::string& path);
  ~AtomicFileWriter();
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;

  void write(const void* data, size_t size);
  void commit();

 private:
  std::string path_;
  std::string tmp_path_;
  int fd_ = -1;
};

void fsync_directory(const std::string& dir);
void make_directories(const std::string& dir);
bool path_exists(const std::string& path);

}  // namespace argent
