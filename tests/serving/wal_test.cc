// The write-ahead log (coordinator/wal.h): records come back exactly as appended, sequence numbers
// continue across reopen and reset, and a log cut at any byte of its last record (a write torn
// by a crash) or with a flipped byte reopens to exactly the intact records before it, reporting
// the discarded tail, after which appends continue a clean log.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <unistd.h>

#include <fstream>

#include "common/error.h"
#include "common/file_util.h"
#include "coordinator/wal.h"
#include "tests/util/test_util.h"

namespace argent {
namespace {

using test::Rng;

std::vector<std::vector<uint8_t>> random_payloads(Rng& rng, int n) {
  std::vector<std::vector<uint8_t>> out;
  for (int i = 0; i < n; ++i) {
    std::vector<uint8_t> p(rng() % 300);  // empty payloads included
    for (uint8_t& b : p) b = uint8_t(rng());
    out.push_back(std::move(p));
  }
  return out;
}

void expect_records(const WalRecovery& rec, const std::vector<std::vector<uint8_t>>& payloads,
                    uint64_t first) {
  ASSERT_EQ(rec.records.size(), payloads.size());
  for (size_t i = 0; i < payloads.size(); ++i) {
    EXPECT_EQ(rec.records[i].sequence, first + i);
    EXPECT_EQ(rec.records[i].payload, payloads[i]) << "record " << i;
  }
}

void truncate_file(const std::string& path, int64_t size) {
  ASSERT_EQ(::truncate(path.c_str(), off_t(size)), 0);
}

TEST(WriteAheadLog, RecordsRoundTripAndSequencesContinue) {
  const uint64_t seed = test::test_seed(1);
  SCOPED_TRACE(test::seed_note(seed));
  Rng rng(seed);
  test::TempDir dir;
  const auto a = random_payloads(rng, 7), b = random_payloads(rng, 5);
  {
    WalRecovery rec;
    WriteAheadLog log = WriteAheadLog::open(dir.path(), 100, &rec);
    EXPECT_TRUE(rec.records.empty());
    EXPECT_EQ(log.append(a), 100u);
    EXPECT_EQ(log.append(b), 107u);
    EXPECT_EQ(log.next_sequence(), 112u);
  }
  {
    WalRecovery rec;
    WriteAheadLog log = WriteAheadLog::open(dir.path(), 1, &rec);  // the file's base wins
    auto all = a;
    all.insert(all.end(), b.begin(), b.end());
    expect_records(rec, all, 100);
    EXPECT_EQ(rec.discarded_bytes, 0);
    EXPECT_EQ(log.next_sequence(), 112u);
    EXPECT_EQ(log.bytes(), int64_t(read_whole_file(WriteAheadLog::path_in(dir.path())).size()));
    // A second server on the same directory is refused while this one holds the log.
    WalRecovery second;
    EXPECT_THROW(WriteAheadLog::open(dir.path(), 1, &second), Error);

    log.reset(500);
    EXPECT_EQ(log.append(a), 500u);
  }
  WalRecovery after;
  WriteAheadLog::open(dir.path(), 1, &after);
  expect_records(after, a, 500);
}

// Every cut inside the last record, and a flipped byte anywhere in it, loses that record only.
TEST(WriteAheadLog, TornOrCorruptTailIsDetectedReportedAndCut) {
  const uint64_t seed = test::test_seed(2);
  SCOPED_TRACE(test::seed_note(seed));
  Rng rng(seed);
  test::TempDir dir;
  const std::string path = WriteAheadLog::path_in(dir.path());
  const auto good = random_payloads(rng, 4);
  std::vector<uint8_t> last(50);
  for (uint8_t& x : last) x = uint8_t(rng());
  int64_t intact = 0;
  {
    WalRecovery rec;
    WriteAheadLog log = WriteAheadLog::open(dir.path(), 1, &rec);
    log.append(good);
    intact = log.bytes();
    log.append({last});
  }
  const std::vector<uint8_t> whole = read_whole_file(path);
  ASSERT_EQ(int64_t(whole.size()), intact + 16 + 50);

  for (int64_t cut = intact + 1; cut < int64_t(whole.size()); ++cut) {
    SCOPED_TRACE("cut at " + std::to_string(cut));
    { std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(whole.data()), cut); }
    WalRecovery rec;
    WriteAheadLog log = WriteAheadLog::open(dir.path(), 1, &rec);
    expect_records(rec, good, 1);
    EXPECT_EQ(rec.valid_bytes, intact);
    EXPECT_EQ(rec.discarded_bytes, cut - intact);
    EXPECT_FALSE(rec.discard_reason.empty());
    EXPECT_EQ(int64_t(read_whole_file(path).size()), intact) << "the torn tail was not cut off";
    // Appending after recovery continues the sequence from the last intact record.
    EXPECT_EQ(log.append({last}), 5u);
  }
  for (int64_t at = intact; at < int64_t(whole.size()); at += 3) {
    SCOPED_TRACE("byte flipped at " + std::to_string(at));
    std::vector<uint8_t> bad = whole;
    bad[size_t(at)] ^= 0x5a;
    { std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bad.data()), long(bad.size())); }
    WalRecovery rec;
    WriteAheadLog::open(dir.path(), 1, &rec);
    expect_records(rec, good, 1);
    EXPECT_GT(rec.discarded_bytes, 0);
  }
}

TEST(WriteAheadLog, BadHeaderIsDataLoss) {
  test::TempDir dir;
  const std::string path = WriteAheadLog::path_in(dir.path());
  { WalRecovery rec; WriteAheadLog::open(dir.path(), 1, &rec); }
  std::vector<uint8_t> bytes = read_whole_file(path);
  bytes[17] ^= 1;  // the base sequence, covered by the header checksum
  { std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), long(bytes.size())); }
  WalRecovery rec;
  try {
    WriteAheadLog::open(dir.path(), 1, &rec);
    FAIL() << "a corrupt header was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kDataLoss);
    EXPECT_NE(std::string(e.what()).find("header checksum"), std::string::npos) << e.what();
  }
  truncate_file(path, 10);
  EXPECT_THROW(WriteAheadLog::open(dir.path(), 1, &rec), Error);
}

}  // namespace
}  // namespace argent
