// The int8 kernels against naive references: every score-tile variant this CPU runs (scalar, AVX2,
// AVX-512 VNNI) must give bit-identical scores to a plain nested loop; quantization must follow
// its documented formula; the blocked layout must match kernels/layout.h's drawing.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <tuple>
#include <vector>

#include "common/error.h"
#include "kernels/cpu/dense_scores.h"
#include "kernels/cpu/kmeans.h"
#include "kernels/cpu/layout_pack.h"
#include "kernels/cpu/quantize.h"
#include "kernels/cpu/score_tile.h"
#include "kernels/layout.h"
#include "tests/util/test_util.h"

namespace argent {

// gtest prints parameters with this (found by argument-dependent lookup in namespace argent).
static void PrintTo(SimdLevel level, std::ostream* os) { *os << simd_level_name(level); }

namespace {

using test::Rng;

// (row, dim) -> byte offset, written out from the drawing in kernels/layout.h rather than
// calling code_offset, so a change to either is caught.
size_t blocked_offset(int64_t row, int d_pad, int dim) {
  return size_t(row / 16) * 16 * size_t(d_pad) + size_t(dim / 4) * 64 + size_t(row % 16) * 4 +
         size_t(dim % 4);
}

// Items [n_rows, dim] and queries [n_queries, dim] as int8, zero-padded to d_pad.
struct TileCase {
  int dim, d_pad;
  int64_t n_rows, n_blocks;
  int n_queries;
  std::vector<int8_t> items;    // row-major [n_blocks * 16, d_pad]
  std::vector<int8_t> blocked;  // blocked layout of `items`
  std::vector<float> item_scales;
  std::vector<int8_t> queries;  // row-major [n_queries, d_pad]
  std::vector<float> query_scales;
  std::vector<int32_t> query_bias;

  TileCase(Rng& rng, int dim_, int64_t rows, int nq)
      : dim(dim_),
        d_pad(padded_dim(dim_)),
        n_rows(rows),
        n_blocks((rows + 15) / 16),
        n_queries(nq) {
    const int64_t padded_rows = n_blocks * 16;
    items.assign(size_t(padded_rows * d_pad), 0);
    queries.assign(size_t(nq) * size_t(d_pad), 0);
    // The full int8 range, -128 included: the kernels promise exact int32 dot products for any
    // codes, and -128 is the value the VNNI kernel's unsigned flip handles specially.
    std::uniform_int_distribution<int> code(-128, 127);
    for (int64_t r = 0; r < n_rows; ++r)
      for (int j = 0; j < dim; ++j) items[size_t(r * d_pad + j)] = int8_t(code(rng));
    for (int q = 0; q < nq; ++q)
      for (int j = 0; j < dim; ++j) queries[size_t(q * d_pad + j)] = int8_t(code(rng));
    blocked.assign(items.size(), 0x55);  // padding must come from the items, not the fill
    for (int64_t r = 0; r < padded_rows; ++r)
      for (int j = 0; j < d_pad; ++j)
        blocked[blocked_offset(r, d_pad, j)] = items[size_t(r * d_pad + j)];
    std::uniform_real_distribution<float> scale(1e-4f, 2e-2f);
    item_scales.resize(size_t(padded_rows));
    for (float& s : item_scales) s = scale(rng);
    query_scales.resize(size_t(nq));
    query_bias.resize(size_t(nq));
    for (int q = 0; q < nq; ++q) {
      query_scales[size_t(q)] = scale(rng);
      int32_t sum = 0;
      for (int j = 0; j < d_pad; ++j) sum += queries[size_t(q * d_pad + j)];
      query_bias[size_t(q)] = 128 * sum;
    }
  }

  int32_t ref_dot(int q, int64_t r) const {
    int32_t dot = 0;
    for (int j = 0; j < dim; ++j)
      dot += int32_t(queries[size_t(q * d_pad + j)]) * int32_t(items[size_t(r * d_pad + j)]);
    return dot;
  }
  float ref_score(int q, int64_t r) const {
    return float(ref_dot(q, r)) * query_scales[size_t(q)] * item_scales[size_t(r)];
  }
};

class ScoreTileTest : public ::testing::TestWithParam<std::tuple<SimdLevel, int>> {};

// Scores of every variant, in all three output modes, equal the nested-loop reference bit for
// bit, for dims that are not multiples of the SIMD width, partial blocks and 1..25 queries.
TEST_P(ScoreTileTest, BitIdenticalToNestedLoop) {
  const auto [level, dim] = GetParam();
  if (!simd_level_supported(level))
    GTEST_SKIP() << "this CPU does not support " << simd_level_name(level)
                 << "; that variant is untested here";
  const ScoreTileFn fn = score_tile_fn(level);
  const uint64_t seed = test::test_seed(1000 + uint64_t(dim));
  SCOPED_TRACE(test::seed_note(seed));
  Rng rng(seed);
  for (int64_t rows : {1, 15, 17, 33, 100}) {
    for (int nq : {1, 2, 3, 5, 11, 12, 13, 25}) {
      SCOPED_TRACE(::testing::Message() << simd_level_name(level) << " dim " << dim << " rows "
                                        << rows << " queries " << nq);
      TileCase c(rng, dim, rows, nq);
      std::vector<const int8_t*> qptr(static_cast<size_t>(nq));
      for (int q = 0; q < nq; ++q) qptr[size_t(q)] = c.queries.data() + q * c.d_pad;
      const int64_t stride = c.n_blocks * 16 + 3;  // a stride that is not the row count
      const float kUnwritten = std::numeric_limits<float>::quiet_NaN();

      // Thresholds at a middle score so that hits are a real mix; random eligibility.
      std::vector<float> thresholds(static_cast<size_t>(nq));
      for (int q = 0; q < nq; ++q) thresholds[size_t(q)] = c.ref_score(q, (rows - 1) / 2);
      std::vector<uint16_t> eligible(static_cast<size_t>(nq * c.n_blocks));
      for (uint16_t& e : eligible) e = uint16_t(rng());

      for (int mode = 0; mode < 3; ++mode) {
        // mode 0: scores only; 1: hits, scores at least for blocks with a hit; 2: hits + all.
        SCOPED_TRACE(::testing::Message() << "mode " << mode);
        std::vector<float> scores(static_cast<size_t>(nq * stride), kUnwritten);
        std::vector<uint16_t> hits(static_cast<size_t>(nq * c.n_blocks), 0xDEAD);
        ScoreTileArgs a;
        a.query_codes = qptr.data();
        a.query_bias = c.query_bias.data();
        a.query_scales = c.query_scales.data();
        a.thresholds = thresholds.data();
        a.n_queries = nq;
        a.blocks = c.blocked.data();
        a.item_scales = c.item_scales.data();
        a.n_blocks = c.n_blocks;
        a.d_pad = c.d_pad;
        a.eligible = eligible.data();
        a.scores = scores.data();
        a.score_stride = stride;
        a.hits = mode == 0 ? nullptr : hits.data();
        a.all_scores = mode == 2;
        fn(a);

        int64_t wrong = 0;
        for (int q = 0; q < nq; ++q) {
          for (int64_t b = 0; b < c.n_blocks; ++b) {
            uint16_t expect_hit = 0;
            for (int r = 0; r < 16; ++r) {
              const int64_t row = b * 16 + r;
              const float expect = c.ref_score(q, row);
              if (expect >= thresholds[size_t(q)]) expect_hit |= uint16_t(1u << r);
            }
            expect_hit &= eligible[size_t(q * c.n_blocks + b)];
            const bool need_scores = mode != 1 || expect_hit != 0;
            if (mode != 0 && hits[size_t(q * c.n_blocks + b)] != expect_hit && wrong++ < 5)
              ADD_FAILURE() << "query " << q << " block " << b << ": hits "
                            << hits[size_t(q * c.n_blocks + b)] << ", expected " << expect_hit;
            for (int r = 0; r < 16 && need_scores; ++r) {
              const int64_t row = b * 16 + r;
              const float got = scores[size_t(q * stride + row)];
              const float expect = c.ref_score(q, row);
              // Bit-identical: compare representations, so -0.0 vs 0.0 or NaN also fail.
              if (std::memcmp(&got, &expect, sizeof(float)) != 0 && wrong++ < 5)
                ADD_FAILURE() << "query " << q << " row " << row << ": score " << got
                              << ", expected " << expect << " (dot " << c.ref_dot(q, row) << ")";
            }
          }
          // Nothing is written past each query's rows.
          for (int64_t row = c.n_blocks * 16; row < stride; ++row)
            if (!std::isnan(scores[size_t(q * stride + row)]) && wrong++ < 5)
              ADD_FAILURE() << "query " << q << ": wrote past its rows at " << row;
        }
        ASSERT_EQ(wrong, 0);
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllLevels, ScoreTileTest,
                         ::testing::Combine(::testing::Values(SimdLevel::kScalar, SimdLevel::kAvx2,
                                                              SimdLevel::kAvx512Vnni),
                                            ::testing::Values(1, 3, 17, 128, 200, 2048)),
                         [](const auto& info) {
                           return std::string(std::get<0>(info.param) == SimdLevel::kAvx512Vnni
                                                  ? "avx512"
                                                  : simd_level_name(std::get<0>(info.param))) +
                                  "_dim" + std::to_string(std::get<1>(info.param));
                         });

// The largest |dot| the codes allow (every product +-128 * -128) stays exact in int32 at the
// largest dimension: no saturation anywhere (vpmaddubsw would saturate; vpdpbusd must not).
TEST(ScoreTile, ExtremeCodesDoNotSaturate) {
  for (SimdLevel level : {SimdLevel::kScalar, SimdLevel::kAvx2, SimdLevel::kAvx512Vnni}) {
    if (!simd_level_supported(level)) continue;  // reported by ScoreTileTest's skip message
    SCOPED_TRACE(simd_level_name(level));
    for (int8_t item_code : {int8_t(-128), int8_t(127)}) {
      const int d_pad = kMaxDim;
      std::vector<int8_t> blocked(static_cast<size_t>(16 * d_pad), item_code);
      std::vector<int8_t> query(static_cast<size_t>(d_pad), int8_t(-128));
      const int8_t* qptr = query.data();
      const int32_t bias = 128 * (-128 * d_pad);
      const float qs = 1.0f, thr = -std::numeric_limits<float>::infinity();
      std::vector<float> item_scales(16, 1.0f), scores(16);
      const uint16_t eligible = 0xFFFF;
      ScoreTileArgs a;
      a.query_codes = &qptr;
      a.query_bias = &bias;
      a.query_scales = &qs;
      a.thresholds = &thr;
      a.n_queries = 1;
      a.blocks = blocked.data();
      a.item_scales = item_scales.data();
      a.n_blocks = 1;
      a.d_pad = d_pad;
      a.eligible = &eligible;
      a.scores = scores.data();
      a.score_stride = 16;
      a.hits = nullptr;
      score_tile_fn(level)(a);
      const float expect = float(int32_t(item_code) * -128 * d_pad);
      for (float s : scores) EXPECT_EQ(s, expect) << "item code " << int(item_code);
    }
  }
}

TEST(SimdDispatch, ForcingALevelSelectsIt) {
  const SimdLevel saved = active_simd_level();
  EXPECT_TRUE(simd_level_supported(SimdLevel::kScalar));
  EXPECT_TRUE(simd_level_supported(saved));
  for (SimdLevel level : {SimdLevel::kScalar, SimdLevel::kAvx2, SimdLevel::kAvx512Vnni}) {
    if (simd_level_supported(level)) {
      set_simd_level(level);
      EXPECT_EQ(active_simd_level(), level);
    } else {
      try {
        set_simd_level(level);
        ADD_FAILURE() << "set_simd_level accepted unsupported " << simd_level_name(level);
      } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find(simd_level_name(level)), std::string::npos)
            << e.what();
      }
    }
  }
  set_simd_level(saved);
}

// dense_scores (the IVF probe and k-means assignment) under each forced level, across several
// row chunks and query tiles and with an output stride wider than the rows.
TEST(DenseScores, EveryLevelMatchesNestedLoop) {
  const uint64_t seed = test::test_seed(77);
  SCOPED_TRACE(test::seed_note(seed));
  Rng rng(seed);
  const SimdLevel saved = active_simd_level();
  TileCase c(rng, 37, 1100, 29);  // 1100 rows: two of dense_scores' 1024-row chunks
  const int64_t rows = c.n_blocks * 16, stride = rows + 5;
  for (SimdLevel level : {SimdLevel::kScalar, SimdLevel::kAvx2, SimdLevel::kAvx512Vnni}) {
    if (!simd_level_supported(level)) continue;
    SCOPED_TRACE(simd_level_name(level));
    set_simd_level(level);
    std::vector<float> out(static_cast<size_t>(c.n_queries * stride), -1.0f);
    dense_scores(c.queries.data(), c.query_scales.data(), c.query_bias.data(), c.n_queries,
                 c.blocked.data(), c.item_scales.data(), rows, c.d_pad, out.data(), stride);
    int64_t wrong = 0;
    for (int q = 0; q < c.n_queries; ++q)
      for (int64_t r = 0; r < rows; ++r) wrong += out[size_t(q * stride + r)] != c.ref_score(q, r);
    EXPECT_EQ(wrong, 0);
  }
  set_simd_level(saved);
}

TEST(DenseScores, SelectProbesOrdersByScoreThenListId) {
  // 3 queries x 6 lists with ties, one list excluded for query 1, nprobe above the usable count.
  const std::vector<float> s = {0.5f, 0.9f, 0.5f, 0.1f, 0.9f, 0.0f,  //
                                1.0f, 2.0f, 3.0f, 4.0f, 5.0f, 6.0f,  //
                                0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
  std::vector<uint8_t> ok(18, 1);
  ok[6 + 5] = 0;
  std::vector<int32_t> out(3 * 7);
  select_probes(
      s.data(), 3, 6, 7, [&](int64_t q, int32_t l) { return ok[size_t(q * 6 + l)] != 0; },
      out.data());
  EXPECT_EQ(std::vector<int32_t>(out.begin(), out.begin() + 7),
            (std::vector<int32_t>{1, 4, 0, 2, 3, 5, -1}));
  EXPECT_EQ(std::vector<int32_t>(out.begin() + 7, out.begin() + 14),
            (std::vector<int32_t>{4, 3, 2, 1, 0, -1, -1}));
  EXPECT_EQ(std::vector<int32_t>(out.begin() + 14, out.end()),
            (std::vector<int32_t>{0, 1, 2, 3, 4, 5, -1}));
}

TEST(DenseScores, SelectProbesAsksUsableInScoreOrderOnly) {
  // Random scores with many ties, usability from dense to none, nprobe from 1 to past the lists:
  // the selection equals a full sort of the usable lists, and asks usable() of a list at most
  // once, only of lists no worse than the last one it keeps (or of every list, when it keeps
  // fewer than nprobe).
  Rng rng(test::test_seed(77));
  std::uniform_int_distribution<int> score(0, 20);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  for (int round = 0; round < 200; ++round) {
    const int64_t nq = 1 + round % 5, nl = 1 + int64_t(unit(rng) * 300);
    const int nprobe = 1 + int(unit(rng) * double(nl + 10));
    const double p_usable = round % 4 == 0 ? 0.0 : unit(rng);
    std::vector<float> s(size_t(nq * nl));
    std::vector<uint8_t> ok(size_t(nq * nl));
    for (size_t i = 0; i < s.size(); ++i) {
      s[i] = float(score(rng)) * 0.25f;
      ok[i] = unit(rng) < p_usable;
    }
    std::vector<int> asked(size_t(nq * nl), 0);
    std::vector<int32_t> out(size_t(nq * nprobe));
    select_probes(
        s.data(), nq, nl, nprobe,
        [&](int64_t q, int32_t l) {
          ++asked[size_t(q * nl + l)];
          return ok[size_t(q * nl + l)] != 0;
        },
        out.data());
    for (int64_t q = 0; q < nq; ++q) {
      std::vector<int32_t> ref;
      for (int32_t l = 0; l < nl; ++l)
        if (ok[size_t(q * nl + l)]) ref.push_back(l);
      const float* sq = s.data() + q * nl;
      std::sort(ref.begin(), ref.end(),
                [sq](int32_t a, int32_t b) { return sq[a] > sq[b] || (sq[a] == sq[b] && a < b); });
      ref.resize(size_t(nprobe), -1);
      ASSERT_EQ(std::vector<int32_t>(out.begin() + q * nprobe, out.begin() + (q + 1) * nprobe), ref)
          << "round " << round << " query " << q;
      const int32_t last = ref.back();
      for (int32_t l = 0; l < nl; ++l) {
        ASSERT_LE(asked[size_t(q * nl + l)], 1) << "round " << round << " list " << l;
        // A kept list's score bounds those asked about, when nprobe lists were kept.
        if (last >= 0 && asked[size_t(q * nl + l)])
          EXPECT_TRUE(sq[l] > sq[last] || (sq[l] == sq[last] && l <= last))
              << "round " << round << " list " << l << " asked after the last kept " << last;
      }
    }
  }
}

// ---- Quantization -----------------------------------------------------------------------------

// Float rounding inside the library (x * float(127 / amax)) and the float64 reference
// (x * 127 / amax) can disagree by one code only when the exact value is this close to a
// half-integer: |x| * 127 / amax <= 127, so a few float ulps of 127 (~1e-5) bound the gap.
constexpr double kHalfwaySlack = 1e-4;
// Such near-half values are rare (a value lands within kHalfwaySlack of a half-integer with
// probability 2e-4, and float rounding must then also cross it): over a few hundred thousand
// codes per case, more than this many off-by-one codes means a systematic rounding error.
constexpr int64_t kMaxHalfwayCodes = 3;
// With normalize the library divides by the norm in float (a float reciprocal, then a float
// product): the scale may differ from max|x / ||x|| | / 127 by a few float ulps (6e-8 each).
constexpr double kNormalizedScaleTol = 1e-6;

class QuantizeTest : public ::testing::TestWithParam<std::tuple<int, bool>> {};

TEST_P(QuantizeTest, MatchesFloat64Formula) {
  const auto [dim, normalize] = GetParam();
  const uint64_t seed = test::test_seed(31 + uint64_t(dim));
  SCOPED_TRACE(test::seed_note(seed));
  Rng rng(seed);
  const int d_pad = padded_dim(dim);
  const int64_t n = 300;
  std::vector<float> x = test::random_normal(rng, size_t(n * dim));
  std::uniform_real_distribution<float> magnitude(-6.0f, 6.0f);
  for (int64_t i = 0; i < n; ++i) {
    const float m = std::pow(10.0f, magnitude(rng));  // rows from 1e-6 to 1e6
    for (int j = 0; j < dim; ++j) x[size_t(i * dim + j)] *= m;
  }
  for (int j = 0; j < dim; ++j) x[size_t(7 * dim + j)] = 0.0f;  // an all-zero row

  std::vector<int8_t> codes(static_cast<size_t>(n * d_pad),
                            0x7F);  // padding must be written as zero
  std::vector<float> scales(static_cast<size_t>(n));
  std::vector<int32_t> bias(static_cast<size_t>(n));
  quantize_rows(x.data(), n, dim, d_pad, normalize, codes.data(), scales.data(), bias.data());

  int64_t halfway = 0;
  for (int64_t i = 0; i < n; ++i) {
    SCOPED_TRACE(::testing::Message() << "row " << i);
    std::vector<double> y(static_cast<size_t>(dim));
    double sq = 0, amax = 0;
    for (int j = 0; j < dim; ++j) sq += double(x[size_t(i * dim + j)]) * x[size_t(i * dim + j)];
    for (int j = 0; j < dim; ++j) {
      y[size_t(j)] = double(x[size_t(i * dim + j)]) / (normalize && sq > 0 ? std::sqrt(sq) : 1.0);
      amax = std::max(amax, std::fabs(y[size_t(j)]));
    }
    const int8_t* c = codes.data() + i * d_pad;
    int32_t sum = 0;
    for (int j = dim; j < d_pad; ++j) EXPECT_EQ(c[j], 0) << "padding dim " << j;
    if (amax == 0) {
      EXPECT_EQ(scales[size_t(i)], 0.0f);
      for (int j = 0; j < dim; ++j) EXPECT_EQ(c[j], 0);
      EXPECT_EQ(bias[size_t(i)], 0);
      continue;
    }
    if (normalize) {
      EXPECT_NEAR(scales[size_t(i)], amax / 127.0, kNormalizedScaleTol * amax / 127.0);
    } else {
      EXPECT_EQ(scales[size_t(i)], float(amax) / 127.0f);  // amax is a float: exactly amax/127
    }
    for (int j = 0; j < dim; ++j) {
      const double v = y[size_t(j)] * 127.0 / amax;
      const double r = std::nearbyint(v);  // round half to even, as lrint in the default mode
      const int expect = int(std::clamp(r, -127.0, 127.0));
      sum += c[j];
      if (c[j] == expect) continue;
      const double frac = std::fabs(v - std::trunc(v));
      EXPECT_TRUE(std::fabs(frac - 0.5) < kHalfwaySlack && std::abs(c[j] - expect) == 1)
          << "dim " << j << ": code " << int(c[j]) << ", reference " << expect << " (" << v << ")";
      ++halfway;
    }
    EXPECT_EQ(bias[size_t(i)], 128 * sum);
  }
  EXPECT_LE(halfway, kMaxHalfwayCodes) << "too many codes off by one from the float64 reference";
}

// Rows of exact floats m * 2^exponent (|m| < 2^13, first row a lone `first`) and the same rows
// at m * 2^-10 (first row first * 2^(-10 - exponent)), each exactly representable.
struct ScaledRows {
  std::vector<float> scaled, plain;
};
ScaledRows scaled_rows(Rng& rng, int64_t n, int dim, int exponent, float first) {
  std::uniform_int_distribution<int> integer(-8191, 8191);
  ScaledRows r;
  r.scaled.resize(static_cast<size_t>(n * dim));
  r.plain.resize(r.scaled.size());
  for (size_t i = 0; i < r.scaled.size(); ++i) {
    const int m = integer(rng);
    r.scaled[i] = std::ldexp(float(m), exponent);
    r.plain[i] = std::ldexp(float(m), -10);
  }
  for (int j = 0; j < dim; ++j) r.scaled[size_t(j)] = r.plain[size_t(j)] = 0.0f;
  r.scaled[0] = first;
  r.plain[0] = float(std::ldexp(double(first), -10 - exponent));
  return r;
}

// Rows scaled by 2^(exponent + 10) against float's range quantize like the plain ones: identical
// codes and biases, and a finite scale, equal when normalized, else 2^(exponent + 10) times the
// plain one rounded once to a (possibly subnormal) float.
void expect_quantized_like_plain(int dim, bool normalize, const ScaledRows& rows, int exponent) {
  const int d_pad = padded_dim(dim);
  const int64_t n = int64_t(rows.plain.size()) / dim;
  std::vector<int8_t> codes(static_cast<size_t>(n * d_pad)), plain_codes(codes.size());
  std::vector<float> scales(static_cast<size_t>(n)), plain_scales(static_cast<size_t>(n));
  std::vector<int32_t> bias(static_cast<size_t>(n)), plain_bias(static_cast<size_t>(n));
  quantize_rows(rows.scaled.data(), n, dim, d_pad, normalize, codes.data(), scales.data(),
                bias.data());
  quantize_rows(rows.plain.data(), n, dim, d_pad, normalize, plain_codes.data(),
                plain_scales.data(), plain_bias.data());
  EXPECT_EQ(codes, plain_codes);
  EXPECT_EQ(bias, plain_bias);
  for (int64_t i = 0; i < n; ++i) {
    SCOPED_TRACE(::testing::Message() << "row " << i);
    ASSERT_TRUE(std::isfinite(scales[size_t(i)]));
    const double want =
        normalize ? plain_scales[size_t(i)] : std::ldexp(double(plain_scales[size_t(i)]), exponent + 10);
    EXPECT_LE(std::fabs(double(scales[size_t(i)]) - want),
              double(std::numeric_limits<float>::denorm_min()));
  }
}

// Subnormal rows (an upsert of [1e-40] * d once got scale inf, which no rank could apply and
// which the write-ahead log replayed on every restart) quantize like the same rows scaled up.
TEST_P(QuantizeTest, SubnormalRowsQuantizeLikeScaledRows) {
  const auto [dim, normalize] = GetParam();
  const uint64_t seed = test::test_seed(83 + uint64_t(dim));
  SCOPED_TRACE(test::seed_note(seed));
  Rng rng(seed);
  // 2^-140 times integers below 2^13: exact subnormals; the first row's lone 2^-149 the least.
  expect_quantized_like_plain(
      dim, normalize, scaled_rows(rng, 40, dim, -140, std::numeric_limits<float>::denorm_min()),
      -140);
}

// Rows near float's top (norm above 2^126, so 1 / ||x|| is subnormal) quantize like the same rows
// scaled down. Before, their normalized values went through that subnormal and lost bits.
TEST_P(QuantizeTest, HugeRowsQuantizeLikeScaledRows) {
  const auto [dim, normalize] = GetParam();
  const uint64_t seed = test::test_seed(89 + uint64_t(dim));
  SCOPED_TRACE(test::seed_note(seed));
  Rng rng(seed);
  // 2^114 times integers below 2^13: exact floats up to 2^127; the first row float's largest.
  expect_quantized_like_plain(
      dim, normalize, scaled_rows(rng, 40, dim, 114, std::numeric_limits<float>::max()), 114);
}

// Round trip: every dequantized value is within half a quantization step of the (normalized)
// input, and the largest-magnitude element is represented as +-127 exactly.
TEST_P(QuantizeTest, RoundTripErrorIsHalfAStep) {
  const auto [dim, normalize] = GetParam();
  const uint64_t seed = test::test_seed(57 + uint64_t(dim));
  SCOPED_TRACE(test::seed_note(seed));
  Rng rng(seed);
  const int d_pad = padded_dim(dim);
  const int64_t n = 200;
  const std::vector<float> x = test::random_normal(rng, size_t(n * dim));
  std::vector<int8_t> codes(static_cast<size_t>(n * d_pad));
  std::vector<float> scales(static_cast<size_t>(n));
  quantize_rows(x.data(), n, dim, d_pad, normalize, codes.data(), scales.data(), nullptr);
  std::vector<float> back(static_cast<size_t>(n * dim));
  dequantize_rows(codes.data(), scales.data(), n, dim, d_pad, back.data());
  // Half a step, plus float rounding of the scaled input and of code * scale (a few ulps).
  constexpr double kStepFraction = 0.5 + 1e-4;
  for (int64_t i = 0; i < n; ++i) {
    double sq = 0;
    for (int j = 0; j < dim; ++j) sq += double(x[size_t(i * dim + j)]) * x[size_t(i * dim + j)];
    const double norm = normalize ? std::sqrt(sq) : 1.0;
    int j_max = 0;
    for (int j = 0; j < dim; ++j) {
      const double want = x[size_t(i * dim + j)] / norm;
      EXPECT_EQ(back[size_t(i * dim + j)], float(codes[size_t(i * d_pad + j)]) * scales[size_t(i)]);
      EXPECT_LE(std::fabs(back[size_t(i * dim + j)] - want), kStepFraction * scales[size_t(i)])
          << "row " << i << " dim " << j;
      if (std::fabs(x[size_t(i * dim + j)]) > std::fabs(x[size_t(i * dim + j_max)])) j_max = j;
    }
    EXPECT_EQ(std::abs(int(codes[size_t(i * d_pad + j_max)])), 127) << "row " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(Dims, QuantizeTest,
                         ::testing::Combine(::testing::Values(1, 3, 17, 128, 200, 2048),
                                            ::testing::Bool()),
                         [](const auto& info) {
                           return "dim" + std::to_string(std::get<0>(info.param)) +
                                  (std::get<1>(info.param) ? "_normalized" : "_raw");
                         });

TEST(Quantize, CodeBiasIs128TimesCodeSum) {
  Rng rng(test::test_seed(5));
  const std::vector<int8_t> codes = test::random_codes(rng, 5 * 12, -127, 127);
  std::vector<int32_t> bias(5);
  code_bias(codes.data(), 5, 12, bias.data());
  for (int i = 0; i < 5; ++i) {
    int32_t sum = 0;
    for (int j = 0; j < 12; ++j) sum += codes[size_t(i * 12 + j)];
    EXPECT_EQ(bias[size_t(i)], 128 * sum);
  }
}

// ---- Blocked layout ---------------------------------------------------------------------------

TEST(Layout, PackUnpackClearFollowTheDrawing) {
  const uint64_t seed = test::test_seed(11);
  SCOPED_TRACE(test::seed_note(seed));
  Rng rng(seed);
  for (int d_pad : {4, 20, 132}) {
    const int64_t first = 13, n = 37;  // starts and ends mid-block
    const int64_t total = round_up_rows(first + n);
    const std::vector<int8_t> rows = test::random_codes(rng, size_t(n * d_pad), -128, 127);
    std::vector<int8_t> blocked(size_t(total) * size_t(d_pad), 9);
    pack_rows(rows.data(), n, d_pad, blocked.data(), first);
    for (int64_t r = 0; r < total; ++r)
      for (int j = 0; j < d_pad; ++j) {
        EXPECT_EQ(code_offset(r, d_pad, j), blocked_offset(r, d_pad, j));
        const int8_t want = r >= first && r < first + n ? rows[size_t((r - first) * d_pad + j)] : 9;
        ASSERT_EQ(blocked[blocked_offset(r, d_pad, j)], want) << "row " << r << " dim " << j;
      }
    std::vector<int8_t> out(static_cast<size_t>(d_pad));
    unpack_row(blocked.data(), d_pad, first + 20, out.data());
    EXPECT_TRUE(std::equal(out.begin(), out.end(), rows.begin() + 20 * d_pad));
    clear_row(blocked.data(), d_pad, first + 20);
    for (int64_t r = 0; r < total; ++r)
      for (int j = 0; j < d_pad; ++j) {
        const int8_t b = blocked[blocked_offset(r, d_pad, j)];
        if (r == first + 20) {
          ASSERT_EQ(b, 0);
        } else {
          ASSERT_EQ(b, r >= first && r < first + n ? rows[size_t((r - first) * d_pad + j)] : 9);
        }
      }
  }
}

// ---- k-means ----------------------------------------------------------------------------------

// num_threads is a request, and the runtime may form a smaller team than omp_get_max_threads()
// (OMP_THREAD_LIMIT, OMP_DYNAMIC, nested regions). With max-active-levels 0 every region runs on
// one thread while omp_get_max_threads() still says 4: k-means must reduce over the thread that
// ran, not read the accumulators of three that never did. One thread either way is the same
// computation, so the centroids must be bit-identical to a run with one thread asked for.
TEST(KMeans, ATeamSmallerThanAskedForGivesTheOneThreadCentroids) {
  const uint64_t seed = test::test_seed(13);
  SCOPED_TRACE(test::seed_note(seed));
  Rng rng(seed);
  constexpr int64_t kN = 2000;
  constexpr int kDim = 24;
  const std::vector<float> x = test::random_normal(rng, size_t(kN * kDim));
  KMeansParams p;
  p.n_clusters = 16;
  p.seed = seed;
  const int saved_threads = omp_get_max_threads();
  const int saved_levels = omp_get_max_active_levels();
  omp_set_num_threads(1);
  const std::vector<float> asked_one = spherical_kmeans(x.data(), kN, kDim, p);
  omp_set_num_threads(4);
  omp_set_max_active_levels(0);
  const std::vector<float> given_one = spherical_kmeans(x.data(), kN, kDim, p);
  omp_set_max_active_levels(saved_levels);
  omp_set_num_threads(saved_threads);
  ASSERT_EQ(given_one.size(), asked_one.size());
  EXPECT_EQ(std::memcmp(given_one.data(), asked_one.data(), asked_one.size() * sizeof(float)), 0);
}

}  // namespace
}  // namespace argent
