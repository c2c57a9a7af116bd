#include <atomic>
#include <cstdlib>
#include <string>

#include "common/error.h"
#include "kernels/cpu/score_tile.h"

namespace argent {
namespace {

SimdLevel best_supported() {
  if (simd_level_supported(SimdLevel::kAvx512Vnni)) return SimdLevel::kAvx512Vnni;
  if (simd_level_supported(SimdLevel::kAvx2)) return SimdLevel::kAvx2;
  return SimdLevel::kScalar;
}

SimdLevel initial_level() {
  const char* env = std::getenv("ARGENT_SIMD");
  if (env == nullptr || *env == '\0') return best_supported();
  const std::string name(env);
  SimdLevel level;
  if (name == "scalar") {
    level = SimdLevel::kScalar;
  } else if (name == "avx2") {
    level = SimdLevel::kAvx2;
  } else if (name == "avx512") {
    level = SimdLevel::kAvx512Vnni;
  } else {
    ARGENT_CHECK(false, "ARGENT_SIMD='", name, "' is not one of scalar, avx2, avx512");
  }
  ARGENT_CHECK(simd_level_supported(level), "ARGENT_SIMD=", name,
               ": this CPU does not support it");
  return level;
}

std::atomic<int>& level_storage() {
  static std::atomic<int> level{int(initial_level())};
  return level;
}

}  // namespace

const char* simd_level_name(SimdLevel level) {
  switch (level) {
    case SimdLevel::kScalar: return "scalar";
    case SimdLevel::kAvx2: return "avx2";
    case SimdLevel::kAvx512Vnni: return "avx512-vnni";
  }
  return "unknown";
}

bool simd_level_supported(SimdLevel level) {
  switch (level) {
    case SimdLevel::kScalar:
      return true;
    case SimdLevel::kAvx2:
#if defined(__x86_64__)
      return __builtin_cpu_supports("avx2");
#else
      return false;
#endif
    case SimdLevel::kAvx512Vnni:
#if defined(__x86_64__)
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
#else
      return false;
#endif
  }
  return false;
}

SimdLevel active_simd_level() { return SimdLevel(level_storage().load(std::memory_order_relaxed)); }

void set_simd_level(SimdLevel level) {
  ARGENT_CHECK(simd_level_supported(level), "set_simd_level: this CPU does not support ",
               simd_level_name(level));
  level_storage().store(int(level), std::memory_order_relaxed);
}

ScoreTileFn score_tile_fn(SimdLevel level) {
  switch (level) {
#if defined(__x86_64__)
    case SimdLevel::kAvx512Vnni: return score_tile_avx512;
    case SimdLevel::kAvx2: return score_tile_avx2;
#endif
    default: return score_tile_scalar;
  }
}

}  // namespace argent
