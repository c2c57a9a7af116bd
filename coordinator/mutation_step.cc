#include "coordinator/mutation_step.h"

#include <cstring>

#include "common/byte_codec.h"
#include "common/log.h"

namespace argent {
namespace {

// Below this many tombstones a rank does not compact however high the ratio: compaction rewrites
// the whole shard, and a handful of dead rows cost the scan almost nothing.
constexpr int64_t kMinTombstonesToCompact = 256;

}  // namespace

std::vector<uint8_t> encode_mutation_step(const MutationStep& s) {
  ByteWriter w;
  w.put<int32_t>(s.n_requests);
  w.put<int64_t>(int64_t(s.mutations.size()));
  for (const StepMutation& m : s.mutations) {
    w.put<uint8_t>(uint8_t(m.kind));
    w.put<int32_t>(m.rank);
    w.put<int32_t>(m.request);
    w.put<int64_t>(m.item.id);
    w.put<int32_t>(m.item.partition);
    if (m.kind == MutationKind::kDelete) continue;
    w.put<int32_t>(m.item.list);
    w.put<float>(m.item.scale);
    w.put<int32_t>(int32_t(m.item.codes.size()));
    w.put_array(m.item.codes.data(), m.item.codes.size());
    w.put<int32_t>(int32_t(m.item.features.size()));
    for (const auto& [f, v] : m.item.features) {
      w.put<int32_t>(f);
      w.put<int64_t>(v);
    }
  }
  return w.take();
}

MutationStep decode_mutation_step(const std::vector<uint8_t>& bytes, int32_t d_pad, int64_t nlist,
                                  int ranks) {
  ByteReader r(bytes.data(), bytes.size(), "mutation step");
  MutationStep s;
  s.n_requests = r.get<int32_t>();
  const int64_t n = r.get<int64_t>();
  ARGENT_CHECK_DATA(s.n_requests >= 0 && n >= 0 && uint64_t(n) <= r.left(), "mutation step: ",
                    s.n_requests, " requests, ", n, " mutations");
  s.mutations.resize(size_t(n));
  for (StepMutation& m : s.mutations) {
    const uint8_t kind = r.get<uint8_t>();
    ARGENT_CHECK_DATA(kind == uint8_t(MutationKind::kUpsert) || kind == uint8_t(MutationKind::kDelete),
                      "mutation step: kind ", int(kind));
    m.kind = MutationKind(kind);
    m.rank = r.get<int32_t>();
    m.request = r.get<int32_t>();
    ARGENT_CHECK_DATA(m.rank >= 0 && m.rank < ranks && m.request >= 0 && m.request < s.n_requests,
                      "mutation step: rank ", m.rank, ", request ", m.request);
    m.item.id = r.get<int64_t>();
    m.item.partition = r.get<int32_t>();
    if (m.kind == MutationKind::kDelete) continue;
    m.item.list = r.get<int32_t>();
    m.item.scale = r.get<float>();
    ARGENT_CHECK_DATA(m.item.list >= 0 && m.item.list < nlist, "mutation step: list ", m.item.list);
    const int32_t codes = r.get<int32_t>();
    ARGENT_CHECK_DATA(codes == d_pad, "mutation step: ", codes, " codes, d_pad is ", d_pad);
    m.item.codes = r.get_array<int8_t>(codes);
    const int32_t nf = r.get<int32_t>();
    ARGENT_CHECK_DATA(nf >= 0 && uint64_t(nf) * 12 <= r.left(), "mutation step: ", nf, " features");
    m.item.features.resize(size_t(nf));
    for (auto& [f, v] : m.item.features) {
      f = r.get<int32_t>();
      v = r.get<int64_t>();
    }
  }
  ARGENT_CHECK_DATA(r.done(), "mutation step: ", r.left(), " trailing bytes");
  return s;
}

bool maybe_compact(ShardIndex& shard, double ratio, int rank) {
  const int64_t dead = shard.tombstones();
  if (ratio <= 0 || dead < kMinTombstonesToCompact ||
      double(dead) <= ratio * double(dead + shard.n_items()))
    return false;
  ARGENT_LOG(kInfo, "rank ", rank, ": compacting ", dead, " deleted rows");
  shard.compact();
  return true;
}

MutationAck shard_ack(const ShardIndex& shard, int rank) {
  MutationAck a;
  a.rank = rank;
  a.items = shard.n_items();
  a.tombstones = shard.tombstones();
  a.rows_in_use = shard.n_items() + shard.tombstones();
  return a;
}

std::vector<uint8_t> apply_mutation_step(const MutationStep& step, int rank, double compact_ratio,
                                         ShardIndex& shard) {
  std::vector<int64_t> applied(size_t(step.n_requests), 0);
  for (const StepMutation& m : step.mutations) {
    if (m.rank != rank) continue;
    if (m.kind == MutationKind::kUpsert) {
      shard.upsert(m.item);
      ++applied[size_t(m.request)];
    } else if (shard.remove(m.item.id)) {
      ++applied[size_t(m.request)];
    }
  }
  maybe_compact(shard, compact_ratio, rank);
  std::vector<uint8_t> out(mutation_ack_bytes(step.n_requests));
  const MutationAck ack = shard_ack(shard, rank);
  std::memcpy(out.data(), &ack, sizeof ack);
  std::memcpy(out.data() + sizeof ack, applied.data(), applied.size() * sizeof(int64_t));
  return out;
}

}  // namespace argent
