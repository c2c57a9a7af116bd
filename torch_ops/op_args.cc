#include "torch_ops/op_args.h"

#include <c10/util/Exception.h>

#include <algorithm>
#include <cstring>
#include <mutex>
#include <sstream>
#include <string>
#include <unordered_map>

#include "kernels/layout.h"

namespace argent::ops {
namespace {

// dtype names as Python spells them (torch.float32), which is where most calls come from.
std::string dtype_name(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return "float32";
    case at::kDouble: return "float64";
    case at::kHalf: return "float16";
    case at::kBFloat16: return "bfloat16";
    case at::kLong: return "int64";
    case at::kInt: return "int32";
    case at::kShort: return "int16";
    case at::kChar: return "int8";
    case at::kByte: return "uint8";
    case at::kBool: return "bool";
    default: return c10::toString(t);
  }
}

std::string describe(at::ScalarType dtype, std::initializer_list<int64_t> shape,
                     const at::Device& device) {
  std::ostringstream s;
  s << dtype_name(dtype) << " [";
  bool first = true;
  for (int64_t d : shape) {
    s << (first ? "" : ", ");
    if (d == kAny) {
      s << "*";
    } else {
      s << d;
    }
    first = false;
  }
  s << "] on " << c10::DeviceTypeName(device.type(), /*lower_case=*/true);
  return s.str();
}

std::string describe(const at::Tensor& t) {
  std::ostringstream s;
  s << dtype_name(t.scalar_type()) << " " << t.sizes() << " on "
    << c10::DeviceTypeName(t.device().type(), /*lower_case=*/true);
  return s.str();
}

std::vector<int64_t> copy_longs(const at::Tensor& t) {
  const at::Tensor h = t.to(at::kCPU).contiguous();
  return std::vector<int64_t>(h.data_ptr<int64_t>(), h.data_ptr<int64_t>() + h.numel());
}

void bind_plan_views(PlanBatch& b) {
  b.views.clear();
  for (size_t p = 0; p < b.begin.size(); ++p)
    b.views.push_back(FilterPlanView{b.ops.data() + b.begin[p], b.length[p]});
}

}  // namespace

TensorStamp::TensorStamp(const at::Tensor& t)
    : storage_(t.storage().getWeakStorageImpl()),
      data_(t.data_ptr()),
      numel_(t.numel()),
      version_(t.is_inference() ? -1 : int64_t(t._version())) {}

bool TensorStamp::matches(const at::Tensor& t) const {
  return version_ >= 0 && !t.is_inference() && !storage_.expired() &&
         storage_._unsafe_get_target() == t.storage().unsafeGetStorageImpl() &&
         data_ == t.data_ptr() && numel_ == t.numel() && version_ == int64_t(t._version());
}

void check_tensor(const char* op, const char* name, const at::Tensor& t, at::ScalarType dtype,
                  std::initializer_list<int64_t> shape, const at::Device& device) {
  TORCH_CHECK(t.defined(), op, ": ", name, " is undefined; expected ",
              describe(dtype, shape, device));
  bool ok = t.scalar_type() == dtype && t.device().type() == device.type() &&
            t.dim() == int64_t(shape.size());
  if (ok && device.is_cuda() && device.has_index()) ok = t.device().index() == device.index();
  int64_t i = 0;
  for (int64_t d : shape) {
    if (ok && d != kAny && t.size(i) != d) ok = false;
    ++i;
  }
  TORCH_CHECK(ok, op, ": ", name, " must be ", describe(dtype, shape, device), ", got ",
              describe(t));
  TORCH_CHECK(t.is_contiguous(), op, ": ", name, " must be contiguous (call .contiguous())");
}

QueryArgs check_queries(const char* op, const at::Tensor& codes, const at::Tensor& scales,
                        const at::Tensor& bias) {
  TORCH_CHECK(codes.defined() && codes.dim() == 2, op,
              ": query_codes must be int8 [n, d_pad], got ",
              codes.defined() ? describe(codes) : std::string("undefined"));
  const at::Device device = codes.device();
  QueryArgs q;
  q.n = codes.size(0);
  q.d_pad = int(codes.size(1));
  TORCH_CHECK(q.d_pad % kGroupDims == 0 && q.d_pad >= kGroupDims && q.d_pad <= kMaxDim, op,
              ": query_codes has ", q.d_pad, " columns; d_pad must be a multiple of 4 in [4, ",
              kMaxDim, "]");
  check_tensor(op, "query_codes", codes, at::kChar, {q.n, q.d_pad}, device);
  check_tensor(op, "query_scales", scales, at::kFloat, {q.n}, device);
  check_tensor(op, "query_bias", bias, at::kInt, {q.n}, device);
  return q;
}

namespace {

PlanBatch read_plans(const char* op, const at::Tensor& plan_ops, const at::Tensor& plan_spans,
                     int64_t n, int bloom_words) {
  static_assert(sizeof(FilterOp) == 4 * sizeof(int64_t), "a plan row is one FilterOp");
  const at::Tensor ops = plan_ops.to(at::kCPU).contiguous();
  const at::Tensor spans = plan_spans.to(at::kCPU).contiguous();
  PlanBatch b;
  b.ops.resize(size_t(ops.size(0)));
  if (!b.ops.empty()) std::memcpy(b.ops.data(), ops.data_ptr(), b.ops.size() * sizeof(FilterOp));
  for (size_t i = 0; i < b.ops.size(); ++i) {
    const FilterOp& o = b.ops[i];
    const int32_t kind = int32_t(o.kind);
    TORCH_CHECK(kind >= 0 && kind <= 3, op, ": plan_ops row ", i, " has op kind ", kind,
                "; not a plan written by argent::compile_filter");
    TORCH_CHECK(o.kind != FilterOpKind::kTerm || (o.word >= 0 && o.word < bloom_words), op,
                ": plan_ops row ", i, " tests signature word ", o.word, "; the index has ",
                bloom_words, " words (was the plan compiled for this index's Bloom parameters?)");
  }
  const int32_t* s = spans.data_ptr<int32_t>();
  b.plan_of_query.assign(size_t(n), -1);
  std::unordered_map<std::string, int32_t> plan_index;
  for (int64_t q = 0; q < n; ++q) {
    const int64_t first = s[2 * q], count = s[2 * q + 1];
    TORCH_CHECK(first >= 0 && count >= 0 && first + count <= int64_t(b.ops.size()), op,
                ": plan_spans[", q, "] = (", first, ", ", count, ") is outside plan_ops' ",
                b.ops.size(), " rows");
    if (count == 0) continue;
    TORCH_CHECK(count <= kMaxFilterOps, op, ": query ", q, "'s plan has ", count,
                " ops; at most ", kMaxFilterOps);
    int depth = 0;  // the postfix program must leave exactly one value and never underflow
    for (int64_t i = first; i < first + count; ++i) {
      const FilterOpKind kind = b.ops[size_t(i)].kind;
      const int pops = kind == FilterOpKind::kTerm ? 0 : kind == FilterOpKind::kNot ? 1 : 2;
      TORCH_CHECK(depth >= pops, op, ": query ", q, "'s plan pops an empty stack at op ",
                  i - first);
      depth += 1 - pops;
      TORCH_CHECK(depth <= kMaxFilterDepth, op, ": query ", q, "'s plan nests deeper than ",
                  kMaxFilterDepth);
    }
    TORCH_CHECK(depth == 1, op, ": query ", q, "'s plan leaves ", depth,
                " values; a plan computes one");
    // Identical plans share one index, as prepare_queries shares identical expressions: the
    // CUDA scan evaluates each distinct plan of a block once.
    const std::string bytes(reinterpret_cast<const char*>(b.ops.data() + first),
                            size_t(count) * sizeof(FilterOp));
    auto it = plan_index.emplace(bytes, int32_t(b.begin.size())).first;
    if (it->second == int32_t(b.begin.size())) {
      b.begin.push_back(int32_t(first));
      b.length.push_back(int32_t(count));
    }
    b.plan_of_query[size_t(q)] = it->second;
  }
  bind_plan_views(b);
  return b;
}

}  // namespace

PlanBatch check_plans(const char* op, const at::Tensor& plan_ops, const at::Tensor& plan_spans,
                      int64_t n, int bloom_words) {
  check_tensor(op, "plan_ops", plan_ops, at::kLong, {kAny, 4}, plan_ops.device());
  check_tensor(op, "plan_spans", plan_spans, at::kInt, {n, 2}, plan_ops.device());
  if (plan_ops.device().is_cpu()) return read_plans(op, plan_ops, plan_spans, n, bloom_words);
  // Plans on a device: validated once per content (TensorStamp), so a model that keeps its
  // plans on the GPU makes no device-to-host copy per call.
  struct Entry {
    TensorStamp ops, spans;
    int bloom_words;
    PlanBatch plans;  // views unbound (they point into `ops` of whichever copy holds them)
  };
  static std::mutex mutex;
  static std::vector<Entry> cache;
  {
    std::lock_guard<std::mutex> lock(mutex);
    for (const Entry& e : cache) {
      if (e.ops.matches(plan_ops) && e.spans.matches(plan_spans) && e.bloom_words == bloom_words) {
        PlanBatch b = e.plans;
        bind_plan_views(b);
        return b;
      }
    }
  }
  PlanBatch b = read_plans(op, plan_ops, plan_spans, n, bloom_words);
  std::lock_guard<std::mutex> lock(mutex);
  if (cache.size() >= 8) cache.erase(cache.begin());
  cache.push_back(Entry{TensorStamp(plan_ops), TensorStamp(plan_spans), bloom_words, b});
  cache.back().plans.views.clear();
  return b;
}

FeatureStoreView check_features(const char* op, const at::Device& device,
                                const at::Tensor& feature_offset, const at::Tensor& feature_count,
                                const at::Tensor& feature_ids, const at::Tensor& feature_values) {
  TORCH_CHECK(feature_offset.defined() && feature_offset.dim() == 1, op,
              ": feature_offset must be int64 [rows]");
  TORCH_CHECK(feature_ids.defined() && feature_ids.dim() == 1, op,
              ": feature_ids must be int32 [pool]");
  const int64_t rows = feature_offset.size(0), pool = feature_ids.size(0);
  check_tensor(op, "feature_offset", feature_offset, at::kLong, {rows}, device);
  check_tensor(op, "feature_count", feature_count, at::kInt, {rows}, device);
  check_tensor(op, "feature_ids", feature_ids, at::kInt, {pool}, device);
  check_tensor(op, "feature_values", feature_values, at::kLong, {pool}, device);
  FeatureStoreView f;
  f.offset = data_as<int64_t>(feature_offset);
  f.count = data_as<int32_t>(feature_count);
  f.feature_ids = data_as<int32_t>(feature_ids);
  f.values = data_as<int64_t>(feature_values);
  return f;
}

IndexArgs check_index(const char* op, int d_pad, const at::Device& device, const at::Tensor& codes,
                      const at::Tensor& scales, const at::Tensor& item_ids,
                      const at::Tensor& signatures, const at::Tensor& list_offsets,
                      const at::Tensor& list_sizes, const at::Tensor& list_summaries,
                      const at::Tensor& feature_offset, const at::Tensor& feature_count,
                      const at::Tensor& feature_ids, const at::Tensor& feature_values) {
  TORCH_CHECK(item_ids.defined() && item_ids.dim() == 1, op, ": item_ids must be int64 [rows]");
  TORCH_CHECK(signatures.defined() && signatures.dim() == 2 && signatures.size(1) >= 1, op,
              ": signatures must be int64 [rows, bloom_words]");
  TORCH_CHECK(list_offsets.defined() && list_offsets.dim() == 1, op,
              ": list_offsets must be int64 [n_lists]");
  const int64_t rows = item_ids.size(0), words = signatures.size(1), nlist = list_offsets.size(0);
  TORCH_CHECK(rows % kBlockRows == 0 && rows < (int64_t(1) << 31), op, ": item_ids has ", rows,
              " rows; a shard's rows are a multiple of 16 below 2^31");
  check_tensor(op, "codes", codes, at::kChar, {rows * d_pad}, device);
  check_tensor(op, "scales", scales, at::kFloat, {rows}, device);
  check_tensor(op, "item_ids", item_ids, at::kLong, {rows}, device);
  check_tensor(op, "signatures", signatures, at::kLong, {rows, words}, device);
  check_tensor(op, "list_offsets", list_offsets, at::kLong, {nlist}, device);
  check_tensor(op, "list_sizes", list_sizes, at::kLong, {nlist}, device);
  check_tensor(op, "list_summaries", list_summaries, at::kLong, {nlist, words}, device);
  TORCH_CHECK(feature_offset.defined() && feature_offset.size(0) == rows, op,
              ": feature_offset must have one entry per row (", rows, ")");
  IndexArgs a;
  a.view.features = check_features(op, device, feature_offset, feature_count, feature_ids,
                                   feature_values);
  ScanIndexView& v = a.view;
  v.codes = data_as<int8_t>(codes);
  v.scales = data_as<float>(scales);
  v.ids = data_as<int64_t>(item_ids);
  v.signatures = data_as<uint64_t>(signatures);
  v.bloom_words = int(words);
  v.d_pad = d_pad;
  v.n_rows = rows;
  v.list_offsets = data_as<int64_t>(list_offsets);
  v.list_sizes = data_as<int64_t>(list_sizes);
  v.list_summaries = data_as<uint64_t>(list_summaries);
  v.n_lists = nlist;
  return a;
}

ListTables check_list_tables(const char* op, const IndexArgs& index,
                             const at::Tensor& list_offsets, const at::Tensor& list_sizes) {
  ListTables t;
  t.offsets = copy_longs(list_offsets);
  t.sizes = copy_longs(list_sizes);
  const int64_t rows = index.view.n_rows;
  for (size_t l = 0; l < t.offsets.size(); ++l) {
    const int64_t o = t.offsets[l], s = t.sizes[l];
    TORCH_CHECK(o >= 0 && o % kBlockRows == 0 && s >= 0 && o + s <= rows, op, ": list ", l,
                " spans rows [", o, ", ", o + s, "), not a 16-aligned range inside the ", rows,
                " rows");
  }
  return t;
}

void check_probes_shape(const char* op, const at::Tensor& probes, int64_t n,
                        const at::Device& device) {
  TORCH_CHECK(probes.dim() == 2, op, ": probes must be int32 [n, nprobe], got ", describe(probes));
  check_tensor(op, "probes", probes, at::kInt, {n, kAny}, device);
  TORCH_CHECK(probes.size(1) >= 1, op, ": probes has no columns (nprobe must be >= 1)");
}

void check_probes(const char* op, const at::Tensor& probes, int64_t n, int64_t n_lists,
                  const at::Device& device) {
  check_probes_shape(op, probes, n, device);
  const at::Tensor h = probes.to(at::kCPU).contiguous();
  const int32_t* p = h.data_ptr<int32_t>();
  const int64_t width = h.size(1);
  std::vector<int32_t> row;
  for (int64_t q = 0; q < h.size(0); ++q) {
    row.clear();
    for (int64_t s = 0; s < width; ++s) {
      const int32_t l = p[q * width + s];
      TORCH_CHECK(l >= -1 && l < n_lists, op, ": probes[", q, ", ", s, "] = ", l,
                  " is not a list number in [0, ", n_lists, ") or -1");
      if (l >= 0) row.push_back(l);
    }
    std::sort(row.begin(), row.end());
    const auto repeat = std::adjacent_find(row.begin(), row.end());
    TORCH_CHECK(repeat == row.end(), op, ": probes row ", q, " names list ", *repeat,
                " twice; a query scans each list once");
  }
}

void check_k(const char* op, int64_t k) {
  TORCH_CHECK(k >= 0 && k <= kMaxK, op, ": k = ", k, " is outside [0, ", kMaxK, "]");
}

BloomParams bloom_params(const char* op, int64_t words, int64_t hashes, int64_t seed) {
  TORCH_CHECK(words >= 1 && words <= 64, op, ": bloom_words ", words, " is outside [1, 64]");
  TORCH_CHECK(hashes >= 1 && hashes <= 16, op, ": bloom_hashes ", hashes, " is outside [1, 16]");
  BloomParams p;
  p.words = int32_t(words);
  p.hashes = int32_t(hashes);
  p.seed = uint64_t(seed);
  return p;
}

void check_feature_ranges(const char* op, const at::Tensor& feature_offset,
                          const at::Tensor& feature_count, int64_t pool) {
  const at::Tensor o = feature_offset.to(at::kCPU), c = feature_count.to(at::kCPU);
  const int64_t* off = o.data_ptr<int64_t>();
  const int32_t* cnt = c.data_ptr<int32_t>();
  for (int64_t r = 0; r < o.numel(); ++r)
    TORCH_CHECK(cnt[r] == 0 || (off[r] >= 0 && cnt[r] > 0 && off[r] + cnt[r] <= pool), op,
                ": row ", r, " has features [", off[r], ", ", off[r] + cnt[r],
                "), outside the pool of ", pool);
}

Centroids check_centroids(const char* op, int d_pad, const at::Device& device,
                          const at::Tensor& centroid_codes, const at::Tensor& centroid_scales,
                          const at::Tensor& list_sizes, const at::Tensor& list_summaries,
                          int64_t nprobe) {
  TORCH_CHECK(list_sizes.defined() && list_sizes.dim() == 1, op,
              ": list_sizes must be int64 [n_lists]");
  TORCH_CHECK(list_summaries.defined() && list_summaries.dim() == 2, op,
              ": list_summaries must be int64 [n_lists, bloom_words]");
  Centroids c;
  c.n_lists = list_sizes.size(0);
  c.rows = (c.n_lists + kBlockRows - 1) / kBlockRows * kBlockRows;
  c.bloom_words = int(list_summaries.size(1));
  check_tensor(op, "centroid_codes", centroid_codes, at::kChar, {c.rows * d_pad}, device);
  check_tensor(op, "centroid_scales", centroid_scales, at::kFloat, {c.rows}, device);
  check_tensor(op, "list_sizes", list_sizes, at::kLong, {c.n_lists}, device);
  check_tensor(op, "list_summaries", list_summaries, at::kLong, {c.n_lists, c.bloom_words},
               device);
  TORCH_CHECK(nprobe >= 1 && nprobe <= c.n_lists, op, ": nprobe ", nprobe, " is outside [1, ",
              c.n_lists, "]");
  return c;
}

ScanQueriesView scan_queries(const at::Tensor& codes, const at::Tensor& scales,
                             const at::Tensor& bias, const QueryArgs& q, const PlanBatch& plans) {
  ScanQueriesView v;
  v.codes = data_as<int8_t>(codes);
  v.scales = data_as<float>(scales);
  v.bias = data_as<int32_t>(bias);
  v.n = q.n;
  v.plans = plans.views.data();
  v.n_plans = int(plans.views.size());
  v.plan_of_query = plans.any() ? plans.plan_of_query.data() : nullptr;
  return v;
}

MergeArgs check_merge(const char* op, at::TensorList scores, at::TensorList ids, int64_t k,
                      const at::Device& device) {
  check_k(op, k);
  TORCH_CHECK(!scores.empty() && scores.size() == ids.size(), op, ": ", scores.size(),
              " score tensors and ", ids.size(), " id tensors; give one of each per source");
  TORCH_CHECK(scores[0].dim() == 2, op, ": scores[0] must be float32 [n, k_in]");
  MergeArgs m;
  m.n = scores[0].size(0);
  m.k_in = scores[0].size(1);
  for (size_t s = 0; s < scores.size(); ++s) {
    const std::string sn = "scores[" + std::to_string(s) + "]";
    const std::string in = "ids[" + std::to_string(s) + "]";
    check_tensor(op, sn.c_str(), scores[s], at::kFloat, {m.n, m.k_in}, device);
    check_tensor(op, in.c_str(), ids[s], at::kLong, {m.n, m.k_in}, device);
  }
  return m;
}

}  // namespace argent::ops
