// The coordinator's write-ahead log: DIR/wal.log (docs/formats.md, "Write-ahead log").
//
// Every acknowledged mutation is a record here before its ack: append() writes a step's records
// with one write and one fdatasync (group commit), and only then does the step loop apply and
// acknowledge them. A record carries its length, a CRC32C and a sequence number; reading stops
// at the first record that is incomplete or fails its checksum (a write torn by a crash), which
// is reported and cut off, so the next append continues a clean log. Single-threaded: only the
// coordinator's step loop uses it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace argent {

struct WalRecord {
  uint64_t sequence = 0;
  std::vector<uint8_t> payload;
};

// What open() found.
struct WalRecovery {
  std::vector<WalRecord> records;  // intact records, in order
  int64_t valid_bytes = 0;         // header + intact records
  int64_t discarded_bytes = 0;     // a torn or corrupt tail, cut off
  std::string discard_reason;      // why the tail was discarded ("" when nothing was)
};

class WriteAheadLog {
 public:
  static std::string path_in(const std::string& dir);

  // Opens (creating when missing) DIR/wal.log. A new log's first record gets sequence
  // `next_sequence`. Intact records go to `recovery`; a torn tail is truncated away (and
  // fdatasync'ed) before this returns. Throws Error(kDataLoss) for a bad file header and
  // Error(kIo) when the file cannot be opened or written.
  static WriteAheadLog open(const std::string& dir, uint64_t next_sequence, WalRecovery* recovery);

  WriteAheadLog(WriteAheadLog&& other) noexcept;
  WriteAheadLog& operator=(WriteAheadLog&& other) noexcept;
  WriteAheadLog(const WriteAheadLog&) = delete;
  WriteAheadLog& operator=(const WriteAheadLog&) = delete;
  ~WriteAheadLog();

  // Appends one record per payload with consecutive sequence numbers, then fdatasync: when it
  // returns, every record is durable. Returns the first record's sequence. On a failed write or
  // sync the log is cut back to its previous end and Error(kIo) is thrown: nothing of the call
  // stays in the log.
  uint64_t append(const std::vector<std::vector<uint8_t>>& payloads);

  // Replaces the log by an empty one (atomically: new file, fsync, rename) whose first record
  // will get `next_sequence`; a snapshot covering everything before it calls this.
  void reset(uint64_t next_sequence);

  uint64_t next_sequence() const { return next_sequence_; }
  int64_t bytes() const { return bytes_; }

 private:
  WriteAheadLog(std::string path, int fd, uint64_t next_sequence, int64_t bytes);
  void close_fd();

  std::string path_;
  int fd_ = -1;
  uint64_t next_sequence_ = 1;
  int64_t bytes_ = 0;
};

}  // namespace argent
