#include "shard/shard_index.h"

#include <algorithm>
#include <cmath>

#include "common/error.h"
#include "kernels/cpu/layout_pack.h"
#include "kernels/layout.h"
#include "shard/partition_file.h"

namespace argent {
namespace {

template <typename T>
T* ptr(const at::Tensor& t) {
  return static_cast<T*>(t.data_ptr());
}

}  // namespace

ShardIndex ShardIndex::load(const std::string& dir, const IndexMeta& meta,
                            const std::vector<int32_t>& partitions, double list_slack) {
  ARGENT_CHECK(list_slack >= 0 && list_slack <= 10, "index.list_slack ", list_slack,
               " must be in [0, 10]");
  std::vector<PartitionData> parts;
  parts.reserve(partitions.size());
  for (int32_t p : partitions) {
    ARGENT_CHECK(p >= 0 && p < meta.partitions, "shard: partition ", p, " is not in [0, ",
                 meta.partitions, ")");
    parts.push_back(read_partition(dir, meta, p));
  }
  return from_partitions(meta, parts, list_slack, dir);
}

ShardIndex ShardIndex::from_partitions(const IndexMeta& meta,
                                       const std::vector<PartitionData>& parts, double list_slack,
                                       const std::string& origin) {
  ARGENT_CHECK(list_slack >= 0 && list_slack <= 10, "index.list_slack ", list_slack,
               " must be in [0, 10]");
  std::vector<int32_t> partitions;
  for (const PartitionData& part : parts) partitions.push_back(part.partition);

  // Lay out the lists: sizes summed over partitions, spare capacity, 16-row aligned starts.
  const int64_t nlist = meta.nlist;
  std::vector<int64_t> size(static_cast<size_t>(nlist), 0);
  std::vector<int64_t> capacity = size, offset = size;
  int64_t pool = 0;
  for (const PartitionData& part : parts) {
    for (int64_t l = 0; l < nlist; ++l)
      size[size_t(l)] += part.list_offsets[size_t(l) + 1] - part.list_offsets[size_t(l)];
    pool += int64_t(part.feature_ids.size());
  }
  int64_t rows = 0;
  for (int64_t l = 0; l < nlist; ++l) {
    const int64_t spare = int64_t(std::ceil(double(size[size_t(l)]) * list_slack));
    capacity[size_t(l)] = round_up_rows(size[size_t(l)] + spare);
    if (list_slack > 0) capacity[size_t(l)] = std::max<int64_t>(capacity[size_t(l)], kBlockRows);
    offset[size_t(l)] = rows;
    rows += capacity[size_t(l)];
  }
  ARGENT_CHECK(rows < (int64_t(1) << 31), "shard: ", rows, " rows exceed the 2^31 rows a shard holds");

  ShardIndex s;
  s.meta_ = meta;
  s.partitions_ = partitions;
  s.list_slack_ = list_slack;
  s.pool_used_ = pool;
  const int words = meta.bloom.words;
  ShardTensors& t = s.t_;
  t.codes = at::zeros({rows * meta.d_pad}, at::kChar);
  t.scales = at::zeros({rows}, at::kFloat);
  t.ids = at::full({rows}, kEmptyId, at::kLong);
  t.signatures = at::zeros({rows, words}, at::kLong);
  t.row_partition = at::full({rows}, -1, at::kInt);
  t.feature_offset = at::zeros({rows}, at::kLong);
  t.feature_count = at::zeros({rows}, at::kInt);
  t.feature_ids = at::empty({pool}, at::kInt);
  t.feature_values = at::empty({pool}, at::kLong);
  t.list_offsets = at::from_blob(offset.data(), {nlist}, at::kLong).clone();
  t.list_sizes = at::from_blob(size.data(), {nlist}, at::kLong).clone();
  t.list_capacity = at::from_blob(capacity.data(), {nlist}, at::kLong).clone();
  t.list_summaries = at::zeros({nlist, words}, at::kLong);

  std::vector<int64_t> cursor = offset;
  int64_t pool_used = 0;
  s.id_to_row_.reserve(size_t(meta.n_items));
  for (const PartitionData& part : parts) {
    for (int64_t l = 0; l < nlist; ++l) {
      const int64_t lo = part.list_offsets[size_t(l)], hi = part.list_offsets[size_t(l) + 1];
      if (lo == hi) continue;
      const int64_t dst = cursor[size_t(l)];
      cursor[size_t(l)] += hi - lo;
      pack_rows(part.codes.data() + lo * meta.d_pad, hi - lo, meta.d_pad, ptr<int8_t>(t.codes), dst);
      for (int64_t i = lo; i < hi; ++i) {
        const int64_t row = dst + (i - lo);
        ptr<float>(t.scales)[row] = part.scales[size_t(i)];
        ptr<int64_t>(t.ids)[row] = part.ids[size_t(i)];
        ptr<int32_t>(t.row_partition)[row] = part.partition;
        const int64_t fb = part.feature_offsets[size_t(i)], fe = part.feature_offsets[size_t(i) + 1];
        ptr<int64_t>(t.feature_offset)[row] = pool_used;
        ptr<int32_t>(t.feature_count)[row] = int32_t(fe - fb);
        std::copy(part.feature_ids.begin() + fb, part.feature_ids.begin() + fe,
                  ptr<int32_t>(t.feature_ids) + pool_used);
        std::copy(part.feature_values.begin() + fb, part.feature_values.begin() + fe,
                  ptr<int64_t>(t.feature_values) + pool_used);
        pool_used += fe - fb;
        ARGENT_CHECK_DATA(s.id_to_row_.emplace(part.ids[size_t(i)], row).second, origin,
                          ": id ", part.ids[size_t(i)], " is stored in two partitions");
      }
    }
  }

  const ScanIndexView v = s.view();
  uint64_t* sigs = ptr<uint64_t>(t.signatures);
  bloom_signatures(meta.bloom, v.features, rows, sigs);
  uint64_t* summaries = ptr<uint64_t>(t.list_summaries);
  for (int64_t l = 0; l < nlist; ++l)
    for (int64_t r = offset[size_t(l)]; r < offset[size_t(l)] + size[size_t(l)]; ++r)
      for (int w = 0; w < words; ++w) summaries[l * words + w] |= sigs[r * words + w];
  return s;
}

ShardIndex ShardIndex::from_tensors(const IndexMeta& meta, ShardTensors t,
                                   std::vector<int32_t> partitions, double list_slack) {
  const int64_t rows = t.ids.numel(), nlist = meta.nlist, words = meta.bloom.words;
  auto check = [](const at::Tensor& x, const char* name, at::ScalarType type,
                  std::vector<int64_t> shape) {
    ARGENT_CHECK(x.defined() && x.device().is_cpu() && x.scalar_type() == type &&
                     x.is_contiguous() && x.sizes() == at::IntArrayRef(shape),
                 "shard tensors: ", name, " must be a contiguous CPU ", c10::toString(type),
                 " tensor of shape ", at::IntArrayRef(shape), ", got ",
                 x.defined() ? x.toString() : std::string("undefined"), " ",
                 x.defined() ? x.sizes() : at::IntArrayRef{});
  };
  check(t.codes, "codes", at::kChar, {rows * meta.d_pad});
  check(t.scales, "scales", at::kFloat, {rows});
  check(t.ids, "ids", at::kLong, {rows});
  check(t.signatures, "signatures", at::kLong, {rows, words});
  check(t.row_partition, "row_partition", at::kInt, {rows});
  check(t.feature_offset, "feature_offset", at::kLong, {rows});
  check(t.feature_count, "feature_count", at::kInt, {rows});
  check(t.feature_ids, "feature_ids", at::kInt, {t.feature_ids.numel()});
  check(t.feature_values, "feature_values", at::kLong, {t.feature_ids.numel()});
  check(t.list_offsets, "list_offsets", at::kLong, {nlist});
  check(t.list_sizes, "list_sizes", at::kLong, {nlist});
  check(t.list_capacity, "list_capacity", at::kLong, {nlist});
  check(t.list_summaries, "list_summaries", at::kLong, {nlist, words});
  ARGENT_CHECK(rows % kBlockRows == 0, "shard tensors: ", rows, " rows, not a multiple of 16");

  ShardIndex s;
  s.meta_ = meta;
  s.partitions_ = std::move(partitions);
  s.list_slack_ = list_slack;
  s.t_ = std::move(t);
  const int64_t* ids = ptr<int64_t>(s.t_.ids);
  const int64_t* offset = ptr<int64_t>(s.t_.list_offsets);
  const int64_t* size = ptr<int64_t>(s.t_.list_sizes);
  const int64_t* f_offset = ptr<int64_t>(s.t_.feature_offset);
  const int32_t* f_count = ptr<int32_t>(s.t_.feature_count);
  for (int64_t l = 0; l < nlist; ++l) {
    for (int64_t r = offset[l]; r < offset[l] + size[l]; ++r) {
      if (ids[r] == kEmptyId) {
        ++s.tombstones_;
        continue;
      }
      ARGENT_CHECK(s.id_to_row_.emplace(ids[r], r).second, "shard tensors: id ", ids[r],
                   " is stored twice");
    }
  }
  // The feature pool is append-only: everything past the last referenced entry is free.
  for (int64_t r = 0; r < rows; ++r)
    if (f_count[r] > 0) s.pool_used_ = std::max(s.pool_used_, f_offset[r] + f_count[r]);
  ARGENT_CHECK(s.pool_used_ <= s.t_.feature_ids.numel(), "shard tensors: rows reference ",
               s.pool_used_, " feature entries, the pool holds ", s.t_.feature_ids.numel());
  return s;
}

ScanIndexView ShardIndex::view() const {
  ScanIndexView v;
  v.codes = ptr<int8_t>(t_.codes);
  v.scales = ptr<float>(t_.scales);
  v.ids = ptr<int64_t>(t_.ids);
  v.signatures = ptr<uint64_t>(t_.signatures);
  v.bloom_words = meta_.bloom.words;
  v.d_pad = meta_.d_pad;
  v.n_rows = t_.ids.size(0);
  v.list_offsets = ptr<int64_t>(t_.list_offsets);
  v.list_sizes = ptr<int64_t>(t_.list_sizes);
  v.list_summaries = ptr<uint64_t>(t_.list_summaries);
  v.n_lists = meta_.nlist;
  v.features.offset = ptr<int64_t>(t_.feature_offset);
  v.features.count = ptr<int32_t>(t_.feature_count);
  v.features.feature_ids = ptr<int32_t>(t_.feature_ids);
  v.features.values = ptr<int64_t>(t_.feature_values);
  return v;
}

int64_t ShardIndex::row_of(int64_t id) const {
  auto it = id_to_row_.find(id);
  return it == id_to_row_.end() ? -1 : it->second;
}

std::vector<std::pair<int32_t, int64_t>> ShardIndex::features_of_row(int64_t row) const {
  ARGENT_CHECK(row >= 0 && row < n_rows(), "shard: row ", row, " out of range");
  const int64_t b = ptr<int64_t>(t_.feature_offset)[row];
  const int32_t c = ptr<int32_t>(t_.feature_count)[row];
  std::vector<std::pair<int32_t, int64_t>> out;
  for (int64_t j = b; j < b + c; ++j)
    out.emplace_back(ptr<int32_t>(t_.feature_ids)[j], ptr<int64_t>(t_.feature_values)[j]);
  return out;
}

void ShardIndex::dequantize_row(int64_t row, float* out) const {
  ARGENT_CHECK(row >= 0 && row < n_rows(), "shard: row ", row, " out of range");
  std::vector<int8_t> code(size_t(meta_.d_pad));
  unpack_row(ptr<int8_t>(t_.codes), meta_.d_pad, row, code.data());
  const float scale = ptr<float>(t_.scales)[row];
  for (int j = 0; j < meta_.dim; ++j) out[j] = float(code[size_t(j)]) * scale;
}

}  // namespace argent
