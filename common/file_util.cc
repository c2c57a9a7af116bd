#include "common/file_util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "common/error.h"

namespace argent {

std::vector<uint8_t> read_whole_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  ARGENT_SYSCALL_CHECK(fd >= 0, "cannot open ", path);
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    ARGENT_SYSCALL_CHECK(false, "cannot stat ", path);
  }
  std::vector<uint8_t> bytes(size_t(st.st_size));
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::read(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ::close(fd);
      ARGENT_SYSCALL_CHECK(n > 0, "cannot read ", path);
    }
    done += size_t(n);
  }
  ::close(fd);
  return bytes;
}

AtomicFileWriter::AtomicFileWriter(const std::string& path)
    : path_(path), tmp_path_(path + ".tmp") {
  fd_ = ::open(tmp_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  ARGENT_SYSCALL_CHECK(fd_ >= 0, "cannot create ", tmp_path_);
}

AtomicFileWriter::~AtomicFileWriter() {
  if (fd_ >= 0) {
    ::close(fd_);
    ::unlink(tmp_path_.c_str());
  }
}

void AtomicFileWriter::write(const void* data, size_t size) {
  const auto* p = static_cast<const uint8_t*>(data);
  while (size > 0) {
    const ssize_t n = ::write(fd_, p, size);
    if (n < 0 && errno == EINTR) continue;
    ARGENT_SYSCALL_CHECK(n > 0, "cannot write ", tmp_path_);
    p += n;
    size -= size_t(n);
  }
}

void AtomicFileWriter::commit() {
  ARGENT_SYSCALL_CHECK(::fdatasync(fd_) == 0, "cannot sync ", tmp_path_);
  ARGENT_SYSCALL_CHECK(::close(fd_) == 0, "cannot close ", tmp_path_);
  fd_ = -1;
  ARGENT_SYSCALL_CHECK(::rename(tmp_path_.c_str(), path_.c_str()) == 0, "cannot rename ",
                       tmp_path_, " to ", path_);
  fsync_directory(std::filesystem::path(path_).parent_path().string());
}

void fsync_directory(const std::string& dir) {
  const int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ARGENT_SYSCALL_CHECK(fd >= 0, "cannot open directory ", dir);
  const int rc = ::fsync(fd);
  ::close(fd);
  ARGENT_SYSCALL_CHECK(rc == 0, "cannot sync directory ", dir);
}

void make_directories(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  ARGENT_CHECK(!ec, "cannot create directory ", dir, ": ", ec.message());
}

bool path_exists(const std::string& path) { return std::filesystem::exists(path); }

}  // namespace argent
