#include "coordinator/wal.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cstring>

#include "common/crc32c.h"
#include "common/error.h"
#include "common/file_util.h"

namespace argent {
namespace {

constexpr char kMagic[8] = {'A', 'R', 'G', 'W', 'A', 'L', '\x1a', '\n'};
constexpr uint32_t kVersion = 1;
constexpr size_t kHeaderBytes = 32;
constexpr size_t kRecordHeaderBytes = 16;
// A record holds one request, at most max_message_bytes of protobuf; 1 GiB bounds any valid one
// and stops a corrupt length from being trusted.
constexpr uint64_t kMaxRecordBytes = uint64_t(1) << 30;

// header: magic[8] | u32 version | u32 reserved | u64 first sequence | u32 reserved | u32 CRC32C
std::vector<uint8_t> file_header(uint64_t first_sequence) {
  std::vector<uint8_t> h(kHeaderBytes, 0);
  std::memcpy(h.data(), kMagic, 8);
  std::memcpy(h.data() + 8, &kVersion, 4);
  std::memcpy(h.data() + 16, &first_sequence, 8);
  const uint32_t crc = crc32c(h.data(), 28);
  std::memcpy(h.data() + 28, &crc, 4);
  return h;
}

// record: u32 payload length | u32 CRC32C of (sequence, payload) | u64 sequence | payload
uint32_t record_crc(uint64_t sequence, const uint8_t* payload, size_t size) {
  return crc32c_extend(crc32c(&sequence, 8), payload, size);
}

void write_all(int fd, const uint8_t* p, size_t n, const std::string& path) {
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    ARGENT_SYSCALL_CHECK(w > 0, "write-ahead log: cannot write ", path);
    p += w;
    n -= size_t(w);
  }
}

}  // namespace

std::string WriteAheadLog::path_in(const std::string& dir) { return dir + "/wal.log"; }

WriteAheadLog::WriteAheadLog(std::string path, int fd, uint64_t next_sequence, int64_t bytes)
    : path_(std::move(path)), fd_(fd), next_sequence_(next_sequence), bytes_(bytes) {}

WriteAheadLog::WriteAheadLog(WriteAheadLog&& o) noexcept
    : path_(std::move(o.path_)), fd_(o.fd_), next_sequence_(o.next_sequence_), bytes_(o.bytes_) {
  o.fd_ = -1;
}

WriteAheadLog& WriteAheadLog::operator=(WriteAheadLog&& o) noexcept {
  if (this != &o) {
    close_fd();
    path_ = std::move(o.path_);
    fd_ = o.fd_;
    next_sequence_ = o.next_sequence_;
    bytes_ = o.bytes_;
    o.fd_ = -1;
  }
  return *this;
}

WriteAheadLog::~WriteAheadLog() { close_fd(); }

void WriteAheadLog::close_fd() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

WriteAheadLog WriteAheadLog::open(const std::string& dir, uint64_t next_sequence,
                                  WalRecovery* recovery) {
  const std::string path = path_in(dir);
  *recovery = WalRecovery{};
  if (!path_exists(path)) {
    AtomicFileWriter w(path);
    const std::vector<uint8_t> h = file_header(next_sequence);
    w.write(h.data(), h.size());
    w.commit();
  }
  const std::vector<uint8_t> bytes = read_whole_file(path);
  ARGENT_CHECK_DATA(bytes.size() >= kHeaderBytes && std::memcmp(bytes.data(), kMagic, 8) == 0,
                    path, ": not an Argent write-ahead log (bad magic or shorter than its header)");
  uint32_t version = 0, stored_crc = 0;
  uint64_t first = 0;
  std::memcpy(&version, bytes.data() + 8, 4);
  std::memcpy(&first, bytes.data() + 16, 8);
  std::memcpy(&stored_crc, bytes.data() + 28, 4);
  ARGENT_CHECK_DATA(stored_crc == crc32c(bytes.data(), 28), path, ": header checksum mismatch");
  ARGENT_CHECK_DATA(version == kVersion, path, ": unsupported version ", version);

  uint64_t expected = first;
  size_t at = kHeaderBytes;
  std::string reason;
  while (at < bytes.size()) {
    if (bytes.size() - at < kRecordHeaderBytes) {
      reason = "incomplete record header";
      break;
    }
    uint32_t length = 0, crc = 0;
    uint64_t sequence = 0;
    std::memcpy(&length, bytes.data() + at, 4);
    std::memcpy(&crc, bytes.data() + at + 4, 4);
    std::memcpy(&sequence, bytes.data() + at + 8, 8);
    if (length > kMaxRecordBytes || bytes.size() - at - kRecordHeaderBytes < length) {
      reason = "record of " + std::to_string(length) + " bytes runs past the end of the file";
      break;
    }
    const uint8_t* payload = bytes.data() + at + kRecordHeaderBytes;
    if (record_crc(sequence, payload, length) != crc) {
      reason = "record checksum mismatch";
      break;
    }
    if (sequence != expected) {
      reason = "sequence " + std::to_string(sequence) + " where " + std::to_string(expected) +
               " was expected";
      break;
    }
    recovery->records.push_back({sequence, std::vector<uint8_t>(payload, payload + length)});
    ++expected;
    at += kRecordHeaderBytes + length;
  }
  recovery->valid_bytes = int64_t(at);
  recovery->discarded_bytes = int64_t(bytes.size() - at);
  recovery->discard_reason = reason;

  const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  ARGENT_SYSCALL_CHECK(fd >= 0, "write-ahead log: cannot open ", path);
  WriteAheadLog log(path, fd, expected, int64_t(at));
  // Two servers appending to one log would interleave records: the second one refuses to start.
  // The kernel drops the lock when the process dies, so a crash never leaves it behind.
  ARGENT_CHECK(::flock(fd, LOCK_EX | LOCK_NB) == 0, "write-ahead log: ", path,
               " is in use by another server (", std::strerror(errno), ")");
  if (at < bytes.size()) {
    // Cut the torn tail off now, so new records follow the last intact one.
    ARGENT_SYSCALL_CHECK(::ftruncate(fd, off_t(at)) == 0, "write-ahead log: cannot truncate ",
                         path);
    ARGENT_SYSCALL_CHECK(::fdatasync(fd) == 0, "write-ahead log: cannot sync ", path);
  }
  ARGENT_SYSCALL_CHECK(::lseek(fd, off_t(at), SEEK_SET) == off_t(at),
                       "write-ahead log: cannot seek ", path);
  return log;
}

uint64_t WriteAheadLog::append(const std::vector<std::vector<uint8_t>>& payloads) {
  ARGENT_ASSERT(fd_ >= 0, "write-ahead log is closed");
  const uint64_t first = next_sequence_;
  std::vector<uint8_t> buf;
  uint64_t sequence = first;
  for (const std::vector<uint8_t>& p : payloads) {
    ARGENT_CHECK(p.size() <= kMaxRecordBytes, "write-ahead log: record of ", p.size(),
                 " bytes is too large");
    const uint32_t length = uint32_t(p.size());
    const uint32_t crc = record_crc(sequence, p.data(), p.size());
    const size_t at = buf.size();
    buf.resize(at + kRecordHeaderBytes + p.size());
    std::memcpy(buf.data() + at, &length, 4);
    std::memcpy(buf.data() + at + 4, &crc, 4);
    std::memcpy(buf.data() + at + 8, &sequence, 8);
    if (!p.empty()) std::memcpy(buf.data() + at + kRecordHeaderBytes, p.data(), p.size());
    ++sequence;
  }
  try {
    write_all(fd_, buf.data(), buf.size(), path_);
    ARGENT_SYSCALL_CHECK(::fdatasync(fd_) == 0, "write-ahead log: cannot sync ", path_);
  } catch (const Error&) {
    // Leave no partial batch behind: these mutations are answered as failed, never applied.
    if (::ftruncate(fd_, off_t(bytes_)) == 0) (void)::fdatasync(fd_);
    (void)::lseek(fd_, off_t(bytes_), SEEK_SET);
    throw;
  }
  bytes_ += int64_t(buf.size());
  next_sequence_ = sequence;
  return first;
}

void WriteAheadLog::reset(uint64_t next_sequence) {
  {
    AtomicFileWriter w(path_);
    const std::vector<uint8_t> h = file_header(next_sequence);
    w.write(h.data(), h.size());
    w.commit();
  }
  close_fd();
  fd_ = ::open(path_.c_str(), O_WRONLY | O_CLOEXEC);
  ARGENT_SYSCALL_CHECK(fd_ >= 0, "write-ahead log: cannot open ", path_);
  ARGENT_CHECK(::flock(fd_, LOCK_EX | LOCK_NB) == 0, "write-ahead log: ", path_,
               " is in use by another server (", std::strerror(errno), ")");
  ARGENT_SYSCALL_CHECK(::lseek(fd_, off_t(kHeaderBytes), SEEK_SET) == off_t(kHeaderBytes),
                       "write-ahead log: cannot seek ", path_);
  next_sequence_ = next_sequence;
  bytes_ = int64_t(kHeaderBytes);
}

}  // namespace argent
