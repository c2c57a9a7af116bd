#include "shard/exact_search.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include <omp.h>

#include "common/error.h"
#include "kernels/cpu/bloom.h"
#include "kernels/cpu/dense_scores.h"
#include "kernels/cpu/layout_pack.h"
#include "kernels/layout.h"

namespace argent {
namespace {

// Rounding slack of a bound: the int8 scores are float(dot) * q_scale * x_scale (three
// roundings), the centroid scores likewise, and the radius is computed in double. A relative
// slack of 1e-5 of the magnitudes involved covers them with a wide margin.
double bound_margin(double query_norm, double centroid_norm, double radius) {
  return 1e-5 * query_norm * (centroid_norm + radius) + 1e-30;
}

}  // namespace

ListBounds::ListBounds(const ShardIndex& shard, const QuantizedCentroids& centroids)
    : centroids_(centroids) {
  const IndexMeta& meta = shard.meta();
  ARGENT_ASSERT(centroids.n_clusters == meta.nlist && centroids.d_pad == meta.d_pad,
                "centroids of ", centroids.n_clusters, " lists for an index of ", meta.nlist);
  compute_all(shard);
}

void ListBounds::compute_all(const ShardIndex& shard) {
  const QuantizedCentroids& centroids = centroids_;
  const IndexMeta& meta = shard.meta();
  const int64_t nlist = meta.nlist;
  const int d_pad = meta.d_pad;
  radius_.assign(size_t(nlist), -1.0);
  centroid_norm_.assign(size_t(nlist), 0.0);
  version_ = shard.version();
  const ShardTensors& t = shard.tensors();
  const int64_t* offsets = t.list_offsets.data_ptr<int64_t>();
  const int64_t* sizes = t.list_sizes.data_ptr<int64_t>();
  const int64_t* ids = t.ids.data_ptr<int64_t>();
  const float* scales = t.scales.data_ptr<float>();
  const int8_t* codes = t.codes.data_ptr<int8_t>();
#pragma omp parallel
  {
    std::vector<int8_t> c(static_cast<size_t>(d_pad)), x(static_cast<size_t>(d_pad));
    std::vector<double> chat(static_cast<size_t>(d_pad));
#pragma omp for schedule(dynamic, 16)
    for (int64_t l = 0; l < nlist; ++l) {
      unpack_row(centroids.blocked.data(), d_pad, l, c.data());
      double norm = 0;
      for (int j = 0; j < d_pad; ++j) {
        chat[size_t(j)] = double(c[size_t(j)]) * double(centroids.scales[size_t(l)]);
        norm += chat[size_t(j)] * chat[size_t(j)];
      }
      centroid_norm_[size_t(l)] = std::sqrt(norm);
      double worst = -1.0;
      for (int64_t r = offsets[l]; r < offsets[l] + sizes[l]; ++r) {
        if (ids[r] == kEmptyId) continue;
        unpack_row(codes, d_pad, r, x.data());
        double d2 = 0;
        for (int j = 0; j < d_pad; ++j) {
          const double diff = double(x[size_t(j)]) * double(scales[r]) - chat[size_t(j)];
          d2 += diff * diff;
        }
        worst = std::max(worst, std::sqrt(d2));
      }
      radius_[size_t(l)] = worst;
    }
  }
}

void ListBounds::sync(const ShardIndex& shard) {
  if (shard.version() == version_) return;
  std::vector<int64_t> rows;
  if (!shard.rows_written_since(version_, &rows)) {
    compute_all(shard);
    return;
  }
  // A written row's list is the one whose row range holds it: the lists sorted by first row.
  const ShardTensors& t = shard.tensors();
  const int64_t nlist = shard.meta().nlist;
  const int64_t* offsets = t.list_offsets.data_ptr<int64_t>();
  const int64_t* sizes = t.list_sizes.data_ptr<int64_t>();
  const int64_t* ids = t.ids.data_ptr<int64_t>();
  std::vector<int64_t> by_start(static_cast<size_t>(nlist));
  std::iota(by_start.begin(), by_start.end(), int64_t(0));
  std::sort(by_start.begin(), by_start.end(),
            [&](int64_t a, int64_t b) { return offsets[a] < offsets[b]; });
  for (const int64_t row : rows) {
    if (ids[row] == kEmptyId) continue;  // a delete, or a row written and deleted since
    const auto after = std::upper_bound(by_start.begin(), by_start.end(), row,
                                        [&](int64_t r, int64_t l) { return r < offsets[l]; });
    ARGENT_ASSERT(after != by_start.begin(), "live row ", row, " lies before every list");
    const int64_t list = *(after - 1);
    ARGENT_ASSERT(row < offsets[list] + sizes[list], "live row ", row, " is past list ", list,
                  "'s rows");
    include(shard, row, list);
  }
  version_ = shard.version();
}

void ListBounds::include(const ShardIndex& shard, int64_t row, int64_t list) {
  const int d_pad = shard.meta().d_pad;
  std::vector<int8_t> c(static_cast<size_t>(d_pad)), x(static_cast<size_t>(d_pad));
  unpack_row(centroids_.blocked.data(), d_pad, list, c.data());
  unpack_row(shard.tensors().codes.data_ptr<int8_t>(), d_pad, row, x.data());
  const double scale = double(shard.tensors().scales.data_ptr<float>()[row]);
  // The same arithmetic as the constructor, so a radius computed either way is the same number.
  double d2 = 0;
  for (int j = 0; j < d_pad; ++j) {
    const double chat = double(c[size_t(j)]) * double(centroids_.scales[size_t(list)]);
    const double diff = double(x[size_t(j)]) * scale - chat;
    d2 += diff * diff;
  }
  radius_[size_t(list)] = std::max(radius_[size_t(list)], std::sqrt(d2));
}

void ListBounds::search(const ShardIndex& shard, const QueryBatch& q, int64_t k, int first_pass,
                        int threads, float* scores, int64_t* ids, int64_t* rows,
                        ScanStats* stats, const uint16_t* const* plan_masks) const {
  ARGENT_ASSERT(shard.version() == version_, "list bounds of shard version ", version_,
                " used on version ", shard.version(), ": sync() after writes");
  const int64_t nlist = centroids_.n_clusters, stride = centroids_.n_rows, n = q.n;
  const int d_pad = q.d_pad;
  std::vector<float> centroid_scores(size_t(n * stride));
  dense_scores(q.codes.data(), q.scales.data(), q.bias.data(), n, centroids_.blocked.data(),
               centroids_.scales.data(), centroids_.n_rows, d_pad, centroid_scores.data(), stride);

  // Per query: the bound of every list that can hold an eligible item; the `first_pass` highest
  // go first (partial selection, not a full sort: the rest is only filtered against the k-th
  // score later).
  ScanQueriesView qv = q.view();
  qv.plan_masks = plan_masks;
  const ShardTensors& t = shard.tensors();
  const uint64_t* summaries = static_cast<const uint64_t*>(t.list_summaries.data_ptr());
  const int words = shard.meta().bloom.words;
  const int width1 = int(std::min<int64_t>(first_pass, nlist));
  std::vector<std::vector<std::pair<double, int32_t>>> order(static_cast<size_t>(n));
  std::vector<int32_t> lists1(size_t(n) * size_t(width1), -1);
  auto higher = [](const std::pair<double, int32_t>& a, const std::pair<double, int32_t>& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  };
#pragma omp parallel for schedule(dynamic, 4) num_threads(threads > 0 ? threads : omp_get_max_threads())
  for (int64_t i = 0; i < n; ++i) {
    double qnorm = 0;
    for (int j = 0; j < d_pad; ++j) {
      const double c = q.codes[size_t(i * d_pad + j)];
      qnorm += c * c;
    }
    qnorm = std::sqrt(qnorm) * double(q.scales[size_t(i)]);
    const int32_t plan = q.plans.empty() ? -1 : q.plan_of_query[size_t(i)];
    auto& lists = order[size_t(i)];
    lists.reserve(size_t(nlist));
    for (int64_t l = 0; l < nlist; ++l) {
      if (radius_[size_t(l)] < 0) continue;  // no live item
      if (plan >= 0 && !eval_plan_summary(qv.plans[plan], summaries + l * words, words)) continue;
      const double r = radius_[size_t(l)], cn = centroid_norm_[size_t(l)];
      lists.push_back({double(centroid_scores[size_t(i * stride + l)]) + qnorm * r +
                           bound_margin(qnorm, cn, r),
                       int32_t(l)});
    }
    const size_t first = std::min(lists.size(), size_t(width1));
    std::partial_sort(lists.begin(), lists.begin() + long(first), lists.end(), higher);
    for (size_t p = 0; p < first; ++p) lists1[size_t(i) * size_t(width1) + p] = lists[p].second;
  }

  // Pass 1: the `first_pass` most promising lists of every query.
  ScanProbesView probes1{lists1.data(), width1};
  fused_scan(shard.view(), qv, probes1, k, scores, ids, rows, stats, threads);
  if (k == 0) return;

  // Pass 2: every further list whose bound reaches the k-th score found so far. Its scan starts
  // from that k-th result (the floor), so rows that cannot displace it are neither checked
  // against the filter nor kept: under a selective filter the bounds leave most lists, and
  // without the floor pass 2 checked a quarter more rows than a scan of every list.
  int width2 = 0;
  std::vector<std::vector<int32_t>> more(static_cast<size_t>(n));
  std::vector<float> floor_scores(static_cast<size_t>(n));
  std::vector<int64_t> floor_ids(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const bool full = ids[size_t(i * k + k - 1)] != kEmptyId;
    floor_scores[size_t(i)] = full ? scores[size_t(i * k + k - 1)] : -INFINITY;
    floor_ids[size_t(i)] = full ? ids[size_t(i * k + k - 1)] : INT64_MAX;
    const double kth = floor_scores[size_t(i)];
    const auto& lists = order[size_t(i)];
    for (size_t p = size_t(width1); p < lists.size(); ++p)
      if (lists[p].first >= kth) more[size_t(i)].push_back(lists[p].second);
    width2 = std::max(width2, int(more[size_t(i)].size()));
  }
  if (width2 == 0) return;
  std::vector<int32_t> lists2(size_t(n) * size_t(width2), -1);
  for (int64_t i = 0; i < n; ++i)
    std::copy(more[size_t(i)].begin(), more[size_t(i)].end(), lists2.begin() + i * width2);
  std::vector<float> scores2(size_t(n * k));
  std::vector<int64_t> ids2(size_t(n * k)), rows2(rows ? size_t(n * k) : 0);
  ScanProbesView probes2{lists2.data(), width2};
  qv.floor_scores = floor_scores.data();
  qv.floor_ids = floor_ids.data();
  fused_scan(shard.view(), qv, probes2, k, scores2.data(), ids2.data(),
             rows ? rows2.data() : nullptr, stats, threads);

  // Merge the two passes (disjoint lists) in the scan's total order.
  std::vector<float> s(static_cast<size_t>(k));
  std::vector<int64_t> d(static_cast<size_t>(k)), w(static_cast<size_t>(k));
  for (int64_t i = 0; i < n; ++i) {
    float* s1 = scores + i * k;
    int64_t* d1 = ids + i * k;
    int64_t* w1 = rows ? rows + i * k : nullptr;
    const float* s2 = scores2.data() + i * k;
    const int64_t* d2 = ids2.data() + i * k;
    const int64_t* w2 = rows ? rows2.data() + i * k : nullptr;
    int64_t a = 0, b = 0;
    for (int64_t o = 0; o < k; ++o) {
      const bool has_a = a < k && d1[a] != kEmptyId, has_b = b < k && d2[b] != kEmptyId;
      if (has_a && (!has_b || s1[a] > s2[b] || (s1[a] == s2[b] && d1[a] < d2[b]))) {
        s[size_t(o)] = s1[a];
        w[size_t(o)] = w1 ? w1[a] : -1;
        d[size_t(o)] = d1[a++];
      } else if (has_b) {
        s[size_t(o)] = s2[b];
        w[size_t(o)] = w2 ? w2[b] : -1;
        d[size_t(o)] = d2[b++];
      } else {
        s[size_t(o)] = -INFINITY;
        w[size_t(o)] = -1;
        d[size_t(o)] = kEmptyId;
      }
    }
    std::copy(s.begin(), s.end(), s1);
    std::copy(d.begin(), d.end(), d1);
    if (w1) std::copy(w.begin(), w.end(), w1);
  }
}

}  // namespace argent
