#include "coordinator/step_protocol.h"

#include <cstring>
#include <sstream>

#include "common/byte_codec.h"
#include "common/error.h"

namespace argent {
namespace {

// Arrays travel as an int64 element count followed by the elements (common/byte_codec.h).
template <typename T>
void put_sized(ByteWriter& w, const std::vector<T>& v) {
  w.put<int64_t>(int64_t(v.size()));
  w.put_array(v.data(), v.size());
}

// The count is checked against `expected` (< 0: any) and the bytes left before allocating.
template <typename T>
std::vector<T> get_sized(ByteReader& r, int64_t expected, const char* what) {
  const int64_t n = r.get<int64_t>();
  ARGENT_CHECK_DATA(expected < 0 || n == expected, "search step: ", what, " has ", n,
                    " elements, expected ", expected);
  ARGENT_CHECK_DATA(n >= 0 && uint64_t(n) <= r.left() / sizeof(T), "search step: ", what,
                    " of ", n, " elements overruns the payload");
  return r.get_array<T>(n);
}

}  // namespace

const char* step_op_name(int32_t op) {
  switch (StepOp(op)) {
    case StepOp::kSearch: return "search";
    case StepOp::kStats: return "stats";
    case StepOp::kShutdown: return "shutdown";
    case StepOp::kMutate: return "mutate";
    case StepOp::kSnapshot: return "snapshot";
    case StepOp::kMoveBegin: return "move begin";
    case StepOp::kMoveChunk: return "move chunk";
    case StepOp::kMoveCommit: return "move commit";
    case StepOp::kMoveAbort: return "move abort";
  }
  return "unknown";
}

void check_step_header(const StepHeader& h, uint64_t previous, int rank) {
  ARGENT_CHECK_DATA(h.magic == StepHeader{}.magic, "rank ", rank, ": step header with magic ",
                    h.magic, ", expected ", StepHeader{}.magic);
  ARGENT_CHECK_DATA(h.step == previous + 1, "rank ", rank, ": received step ", h.step, " (",
                    step_op_name(h.op), ") after step ", previous, ", expected step ",
                    previous + 1, ": a step was skipped or reordered");
}

void check_search_step(const StepHeader& h, const SearchStep& step, int rank) {
  ARGENT_CHECK_DATA(step.queries.n == h.n, "rank ", rank, ": step ", h.step, " (batch ", h.batch,
                    ") payload has n = ", step.queries.n, ", header n = ", h.n);
  ARGENT_CHECK_DATA(step.k == h.k, "rank ", rank, ": step ", h.step, " (batch ", h.batch,
                    ") payload has k = ", step.k, ", header k = ", h.k);
}

void stamp_shard_block(std::vector<uint8_t>& block, const StepHeader& h) {
  ARGENT_ASSERT(block.size() >= sizeof(ShardBlockHeader), "block of ", block.size(), " bytes");
  ShardBlockHeader b;
  std::memcpy(&b, block.data(), sizeof b);
  b.step = h.step;
  b.batch = h.batch;
  b.n = h.n;
  b.k = h.k;
  std::memcpy(block.data(), &b, sizeof b);
}

std::string shard_block_mismatch(const ShardBlockHeader& b, int rank, const StepHeader& h) {
  std::ostringstream why;
  auto differs = [&](const char* field, auto got, auto want) {
    if (got == want) return false;
    why << "rank " << rank << " answered step " << h.step << " (batch " << h.batch << ") with "
        << field << " = " << got << ", expected " << field << " = " << want;
    return true;
  };
  if (differs("rank", int64_t(b.rank), int64_t(rank)) || differs("step", b.step, h.step) ||
      differs("batch", b.batch, h.batch) || differs("n", b.n, h.n) || differs("k", b.k, h.k))
    return why.str();
  return "";
}

std::vector<uint8_t> encode_search_step(const SearchStep& s) {
  const QueryBatch& q = s.queries;
  ByteWriter w;
  w.put<int64_t>(q.n);
  w.put<int32_t>(q.d_pad);
  w.put<int32_t>(s.nprobe);
  w.put<int64_t>(s.k);
  put_sized(w, q.codes);
  put_sized(w, q.scales);
  put_sized(w, q.bias);
  put_sized(w, q.plan_of_query);
  w.put<int64_t>(int64_t(q.plans.size()));
  for (const FilterPlan& plan : q.plans) put_sized(w, plan.ops);
  put_sized(w, s.lists);
  w.put<int32_t>(s.with_codes ? 1 : 0);
  return w.take();
}

// A plan must be a well-formed postfix program: evaluating it never underflows or overflows the
// operand stack, leaves exactly one value, and every term reads a word the signatures have.
static void check_plan(const FilterPlan& plan, int32_t bloom_words) {
  int depth = 0;
  for (const FilterOp& op : plan.ops) {
    switch (op.kind) {
      case FilterOpKind::kTerm:
        ARGENT_CHECK_DATA(op.word >= 0 && op.word < bloom_words, "search step: filter term word ",
                          op.word, " outside [0, ", bloom_words, ")");
        ++depth;
        break;
      case FilterOpKind::kNot:
        ARGENT_CHECK_DATA(depth >= 1, "search step: filter NOT without an operand");
        break;
      case FilterOpKind::kAnd:
      case FilterOpKind::kOr:
        ARGENT_CHECK_DATA(depth >= 2, "search step: filter AND/OR without two operands");
        --depth;
        break;
      default:
        ARGENT_CHECK_DATA(false, "search step: filter op kind ", int32_t(op.kind));
    }
    ARGENT_CHECK_DATA(depth <= kMaxFilterDepth, "search step: filter nests deeper than ",
                      kMaxFilterDepth);
  }
  ARGENT_CHECK_DATA(plan.ops.empty() || depth == 1, "search step: filter leaves ", depth,
                    " values on its stack");
}

SearchStep decode_search_step(const std::vector<uint8_t>& bytes, int32_t d_pad,
                              int32_t bloom_words, int64_t nlist) {
  ByteReader r(bytes.data(), bytes.size(), "search step");
  SearchStep s;
  QueryBatch& q = s.queries;
  q.n = r.get<int64_t>();
  q.d_pad = r.get<int32_t>();
  s.nprobe = r.get<int32_t>();
  s.k = r.get<int64_t>();
  ARGENT_CHECK_DATA(q.n >= 0 && q.n <= (int64_t(1) << 24), "search step: ", q.n, " queries");
  ARGENT_CHECK_DATA(q.d_pad == d_pad, "search step: d_pad ", q.d_pad, " != index d_pad ", d_pad);
  ARGENT_CHECK_DATA(s.nprobe >= 0 && s.k >= 0, "search step: nprobe ", s.nprobe, ", k ", s.k);
  q.codes = get_sized<int8_t>(r, q.n * q.d_pad, "codes");
  q.scales = get_sized<float>(r, q.n, "scales");
  q.bias = get_sized<int32_t>(r, q.n, "bias");
  q.plan_of_query = get_sized<int32_t>(r, -1, "plan_of_query");
  ARGENT_CHECK_DATA(q.plan_of_query.empty() || int64_t(q.plan_of_query.size()) == q.n,
                    "search step: plan_of_query has ", q.plan_of_query.size(), " entries");
  const int64_t n_plans = r.get<int64_t>();
  ARGENT_CHECK_DATA(n_plans >= 0 && n_plans <= q.n, "search step: ", n_plans, " filter plans");
  q.plans.resize(size_t(n_plans));
  for (FilterPlan& plan : q.plans) {
    plan.ops = get_sized<FilterOp>(r, -1, "filter plan");
    ARGENT_CHECK_DATA(plan.ops.size() <= size_t(kMaxFilterOps), "search step: filter plan of ",
                      plan.ops.size(), " ops");
    check_plan(plan, bloom_words);
  }
  for (int32_t p : q.plan_of_query)
    ARGENT_CHECK_DATA(p >= -1 && p < n_plans, "search step: plan index ", p);
  s.lists = get_sized<int32_t>(r, q.n * s.nprobe, "lists");
  for (int32_t l : s.lists)
    ARGENT_CHECK_DATA(l >= -1 && l < nlist, "search step: list ", l, " outside [0, ", nlist, ")");
  const int32_t with_codes = r.get<int32_t>();
  ARGENT_CHECK_DATA(with_codes == 0 || with_codes == 1, "search step: with_codes = ", with_codes);
  s.with_codes = with_codes == 1;
  ARGENT_CHECK_DATA(r.done(), "search step: trailing bytes after the payload");
  return s;
}

// Block layout: header | ids [n, k] | scores [n, k] | item scales [n, k] | codes [n, k, d_pad];
// the last two only with code_dims > 0. Every part stays aligned to its element size.
size_t shard_block_bytes(int64_t n, int64_t k, int32_t code_dims) {
  const size_t rows = size_t(n * k);
  size_t bytes = sizeof(ShardBlockHeader) + rows * (sizeof(float) + sizeof(int64_t));
  if (code_dims > 0) bytes += rows * (sizeof(float) + size_t(code_dims));
  // The ranks' blocks lie end to end in the gathered buffer: rounded up to the header's
  // alignment, rank r's header and ids stay 8-byte aligned (with n * k odd they did not).
  constexpr size_t kAlign = alignof(ShardBlockHeader);
  return (bytes + kAlign - 1) / kAlign * kAlign;
}

void shard_block_pointers(uint8_t* block, int64_t n, int64_t k, ShardBlockHeader** header,
                          float** scores, int64_t** ids, int32_t code_dims, float** item_scales,
                          int8_t** codes) {
  const size_t rows = size_t(n * k);
  *header = reinterpret_cast<ShardBlockHeader*>(block);
  *ids = reinterpret_cast<int64_t*>(block + sizeof(ShardBlockHeader));
  uint8_t* after_ids = block + sizeof(ShardBlockHeader) + rows * sizeof(int64_t);
  *scores = reinterpret_cast<float*>(after_ids);
  if (code_dims > 0) {
    if (item_scales) *item_scales = reinterpret_cast<float*>(after_ids + rows * sizeof(float));
    if (codes) *codes = reinterpret_cast<int8_t*>(after_ids + 2 * rows * sizeof(float));
  }
}

ShardBlockView shard_block(const uint8_t* block, int64_t n, int64_t k, int32_t code_dims) {
  ShardBlockHeader* header;
  float *scores, *item_scales = nullptr;
  int64_t* ids;
  int8_t* codes = nullptr;
  // The pointers are only read through the const view.
  shard_block_pointers(const_cast<uint8_t*>(block), n, k, &header, &scores, &ids, code_dims,
                       &item_scales, &codes);
  return ShardBlockView{header, scores, ids, item_scales, codes};
}

}  // namespace argent
