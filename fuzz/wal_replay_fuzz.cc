// Fuzzes write-ahead log replay: WriteAheadLog::open on a hostile DIR/wal.log, then
// decode_mutation on every record it returns, as Updater::recover does. The first byte picks:
//   0: the rest is the log file, raw
//   1: the rest is a list of record payloads (16-bit length each) written as a well-formed log
//      (correct header, CRC32Cs and sequence numbers, an occasional gap or torn tail as the next
//      byte says), so the fuzzer reaches the mutation decoder behind the checksums
// Properties: open() returns only intact records with consecutive sequence numbers, truncates
// the rest, and a second open() finds exactly the same records and nothing to discard; a record
// that decodes re-encodes to a payload that decodes to the same batch. Failures other than
// argent::Error, crashes and sanitizer reports are findings.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "common/crc32c.h"
#include "common/error.h"
#include "coordinator/mutation_request.h"
#include "coordinator/wal.h"
#include "fuzz_util.h"

namespace {

constexpr int32_t kDim = 8;

void put(std::vector<uint8_t>& out, const void* p, size_t n) {
  const auto* b = static_cast<const uint8_t*>(p);
  out.insert(out.end(), b, b + n);
}

// The layout of coordinator/wal.cc (docs/formats.md, "Write-ahead log").
std::vector<uint8_t> well_formed_log(argent::fuzz::InputReader& in) {
  std::vector<uint8_t> log(32, 0);
  std::memcpy(log.data(), "ARGWAL\x1a\n", 8);
  const uint32_t version = 1;
  uint64_t sequence = 1 + in.byte();
  std::memcpy(log.data() + 8, &version, 4);
  std::memcpy(log.data() + 16, &sequence, 8);
  const uint32_t header_crc = argent::crc32c(log.data(), 28);
  std::memcpy(log.data() + 28, &header_crc, 4);
  const uint8_t flags = in.byte();
  while (!in.done()) {
    const std::vector<uint8_t> payload = in.chunk();
    if ((flags & 1) && payload.size() % 7 == 3) ++sequence;  // a gap
    const uint32_t length = uint32_t(payload.size());
    const uint32_t crc = argent::crc32c_extend(argent::crc32c(&sequence, 8), payload.data(), payload.size());
    put(log, &length, 4);
    put(log, &crc, 4);
    put(log, &sequence, 8);
    put(log, payload.data(), payload.size());
    ++sequence;
  }
  if ((flags & 2) && log.size() > 40) log.resize(log.size() - 1 - flags % 8);  // a torn tail
  return log;
}

bool same_batch(const argent::MutationBatch& a, const argent::MutationBatch& b) {
  // Embeddings bit for bit: a logged NaN must come back as the same NaN (== would say no).
  const bool same_embeddings =
      a.items.embeddings.size() == b.items.embeddings.size() &&
      (a.items.embeddings.empty() ||
       std::memcmp(a.items.embeddings.data(), b.items.embeddings.data(),
                   a.items.embeddings.size() * sizeof(float)) == 0);
  return a.kind == b.kind && a.ids == b.ids && a.items.ids == b.items.ids && same_embeddings &&
         a.items.feature_offsets == b.items.feature_offsets &&
         a.items.feature_ids == b.items.feature_ids &&
         a.items.feature_values == b.items.feature_values;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  argent::fuzz::InputReader in(data, size);
  const int mode = in.byte() % 2;
  const std::vector<uint8_t> file = mode == 0 ? in.rest() : well_formed_log(in);
  const std::string dir = argent::fuzz::scratch_dir();
  const std::string path = argent::WriteAheadLog::path_in(dir);
  argent::fuzz::write_file(path, file.data(), file.size());
  argent::WalRecovery first;
  try {
    argent::WriteAheadLog log = argent::WriteAheadLog::open(dir, 1, &first);
  } catch (const argent::Error&) {
    ::unlink(path.c_str());
    return 0;  // a bad header: refused by name
  }
  for (size_t i = 1; i < first.records.size(); ++i)
    if (first.records[i].sequence != first.records[i - 1].sequence + 1) __builtin_trap();
  if (first.valid_bytes + first.discarded_bytes != int64_t(file.size())) __builtin_trap();
  // The torn tail is gone: reopening finds the same records and nothing more to cut.
  argent::WalRecovery second;
  {
    argent::WriteAheadLog log = argent::WriteAheadLog::open(dir, 1, &second);
  }
  if (second.discarded_bytes != 0 || second.records.size() != first.records.size())
    __builtin_trap();
  for (size_t i = 0; i < first.records.size(); ++i)
    if (second.records[i].payload != first.records[i].payload) __builtin_trap();
  ::unlink(path.c_str());

  for (const argent::WalRecord& r : first.records) {
    argent::MutationBatch batch;
    try {
      batch = argent::decode_mutation(r.payload.data(), r.payload.size(), kDim);
    } catch (const argent::Error&) {
      continue;  // a corrupt record is refused by name
    }
    const std::vector<uint8_t> again = argent::encode_mutation(batch);
    if (!same_batch(argent::decode_mutation(again.data(), again.size(), kDim), batch))
      __builtin_trap();
  }
  return 0;
}
