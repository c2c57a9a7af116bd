// The CPU inner kernel: scores of a few queries against a run of item blocks, with the top-K
// threshold test and the eligibility mask applied, in one pass. Three implementations (scalar,
// AVX2, AVX-512 VNNI) give bit-identical scores; one is chosen at run time.
#pragma once

#include <cstdint>
#include <string>

namespace argent {

constexpr int kMaxTileQueries = 12;  // queries per call: the AVX-512 kernel keeps 12 x 2 accumulators

struct ScoreTileArgs {
  // Queries: `n_queries` (1..kMaxTileQueries) int8 rows of d_pad bytes each.
  const int8_t* const* query_codes;
  const int32_t* query_bias;     // [n_queries] 128 * sum of the query's codes
  const float* query_scales;     // [n_queries]
  const float* thresholds;       // [n_queries] a row is a hit when score >= threshold
  int n_queries;
  // Items: `n_blocks` consecutive blocks of the blocked layout (kernels/layout.h).
  const int8_t* blocks;
  const float* item_scales;      // [n_blocks * 16]
  int64_t n_blocks;
  int d_pad;
  // eligible[q * n_blocks + b]: bit r set when row r of block b may be returned to query q.
  const uint16_t* eligible;
  // Outputs: hits[q * n_blocks + b] = eligible & (score >= threshold), and
  // scores[q * score_stride + row]: for every row when `all_scores` or `hits` is null, otherwise
  // at least for the rows of blocks with a hit (other blocks' scores are left unwritten).
  // Either output may be null when not needed.
  float* scores;
  int64_t score_stride;
  uint16_t* hits;
  bool all_scores = false;
};

using ScoreTileFn = void (*)(const ScoreTileArgs&);

enum class SimdLevel { kScalar = 0, kAvx2 = 1, kAvx512Vnni = 2 };

const char* simd_level_name(SimdLevel level);
bool simd_level_supported(SimdLevel level);  // by this CPU (and this build)
// The level in use: the best supported, or ARGENT_SIMD=scalar|avx2|avx512 when set.
SimdLevel active_simd_level();
// Forces a level (tests compare levels); throws when the CPU does not support it.
void set_simd_level(SimdLevel level);

ScoreTileFn score_tile_fn(SimdLevel level);
inline void score_tile(const ScoreTileArgs& args) { score_tile_fn(active_simd_level())(args); }

// The implementations, one per file; each handles any n_queries and n_blocks.
void score_tile_scalar(const ScoreTileArgs& args);
void score_tile_avx2(const ScoreTileArgs& args);
void score_tile_avx512(const ScoreTileArgs& args);

}  // namespace argent
