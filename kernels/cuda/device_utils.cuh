// Device building blocks of the CUDA search: the int8 tensor-core tile read straight from the
// blocked layout, filter-plan evaluation, and order-preserving score keys.
#pragma once

#include <cstdint>

#include "kernels/cpu/bloom.h"
#include "kernels/filter_plan.h"
#include "kernels/layout.h"

namespace argent {
namespace cuda {

// D += A * B for A 16x32 s8 (row), B 32x8 s8 (col), D 16x8 s32: the exact int32 dot products.
__device__ __forceinline__ void mma_s8_16x8x32(int32_t (&d)[4], const uint32_t (&a)[4],
                                               uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
      "{%8,%9}, {%0,%1,%2,%3};\n"
      : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// The A fragment of k-chunk `c` (dims 32c..32c+31) of one 16-row block of the blocked layout
// (kernels/layout.h). Lane (g = lane / 4, t = lane % 4) holds rows g and g + 8, dims 4t..4t+3 and
// 16+4t..16+4t+3 of the chunk: in the blocked layout those are 4-byte words at
// group * 64 + row * 4, so the warp's four loads cover 8 whole 64-byte lines. Groups past the
// padded dimension read as zero.
__device__ __forceinline__ void load_a_fragment(const int8_t* block, int c, int n_groups, int lane,
                                                uint32_t (&a)[4]) {
  const int g = lane >> 2, t = lane & 3;
  const int g0 = 8 * c + t, g1 = g0 + 4;
  const uint32_t* w = reinterpret_cast<const uint32_t*>(block);
  // word index of (group, row) = group * 16 + row
  a[0] = g0 < n_groups ? __ldg(w + g0 * 16 + g) : 0u;
  a[1] = g0 < n_groups ? __ldg(w + g0 * 16 + g + 8) : 0u;
  a[2] = g1 < n_groups ? __ldg(w + g1 * 16 + g) : 0u;
  a[3] = g1 < n_groups ? __ldg(w + g1 * 16 + g + 8) : 0u;
}

// load_a_fragment for the scan, with the fragment's rows paired: mma rows g and g + 8 are block
// rows 2g and 2g + 1, whose words of a group are adjacent, so each k-slice is one 8-byte load
// (half the load instructions; the L1 pipe is what the scan waits on). The accumulators of
// mma row g belong to row 2g, those of row g + 8 to row 2g + 1. kShared: the block is staged in
// shared memory (the same byte layout: the warp's loads of one k-slice read 256 consecutive
// bytes, free of bank conflicts); else it is read from global memory through the read-only path.
template <bool kShared = false>
__device__ __forceinline__ void load_a_fragment_paired(const int8_t* block, int c, int n_groups,
                                                       int lane, uint32_t (&a)[4]) {
  const int g = lane >> 2, t = lane & 3;
  const int g0 = 8 * c + t, g1 = g0 + 4;
  // uint2 index of (group, rows 2g and 2g + 1) = group * 8 + g
  const uint2* w = reinterpret_cast<const uint2*>(block);
  auto load = [w, g](int group) { return kShared ? w[group * 8 + g] : __ldg(w + group * 8 + g); };
  const uint2 v0 = g0 < n_groups ? load(g0) : make_uint2(0u, 0u);
  const uint2 v1 = g1 < n_groups ? load(g1) : make_uint2(0u, 0u);
  a[0] = v0.x, a[1] = v0.y, a[2] = v1.x, a[3] = v1.y;
}

// Asynchronous global -> shared copies (sm_80 cp.async): 16 bytes bypassing L1, or 4 bytes.
// A thread's copies since its last commit form one group; wait<N> returns once at most N of
// its groups are still in flight.
__device__ __forceinline__ void cp_async_16(void* shared, const void* global) {
  const uint32_t dst = static_cast<uint32_t>(__cvta_generic_to_shared(shared));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(dst), "l"(global) : "memory");
}
__device__ __forceinline__ void cp_async_4(void* shared, const void* global) {
  const uint32_t dst = static_cast<uint32_t>(__cvta_generic_to_shared(shared));
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4;\n" ::"r"(dst), "l"(global) : "memory");
}
__device__ __forceinline__ void cp_async_commit() {
  asm volatile("cp.async.commit_group;\n" ::: "memory");
}
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

// The same score as combine_score (kernels/layout.h), rounded the same way (no FMA).
__device__ __forceinline__ float score_of(int32_t dot, float query_scale, float item_scale) {
  return __fmul_rn(__fmul_rn(__int2float_rn(dot), query_scale), item_scale);
}

// Scores as uint32 keys whose ascending order is descending score (and -inf last but one;
// 0xFFFFFFFF, a NaN's key, marks an empty slot). -0 (a negative product that underflows, with
// tiny scales) gets +0's key: the CPU compares them equal and orders the tie by id.
__device__ __forceinline__ uint32_t descending_key(float score) {
  const uint32_t bits = __float_as_uint(__fadd_rn(score, 0.0f));
  const uint32_t ascending = (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
  return ~ascending;
}
__device__ __forceinline__ float score_of_key(uint32_t key) {
  const uint32_t ascending = ~key;
  const uint32_t bits = (ascending & 0x80000000u) ? (ascending & 0x7FFFFFFFu) : ~ascending;
  return __uint_as_float(bits);
}
constexpr uint32_t kEmptyKey = 0xFFFFFFFFu;

// Called by whole warps: consecutive slots of *counter for the lanes whose `take` is set, taken
// with one shared atomic per warp (per-key atomics on one counter serialise); returns the
// lane's slot, meaningful where take is set.
__device__ __forceinline__ uint32_t warp_reserve(uint32_t* counter, bool take) {
  const int lane = threadIdx.x & 31;
  const uint32_t votes = __ballot_sync(0xFFFFFFFFu, take);
  if (votes == 0) return 0;
  uint32_t at = 0;
  if (lane == 0) at = atomicAdd(counter, uint32_t(__popc(votes)));
  return __shfl_sync(0xFFFFFFFFu, at, 0) + __popc(votes & ((1u << lane) - 1u));
}

// Filter plans evaluated with bit stacks instead of arrays (kMaxFilterDepth is 64): bit 0 of
// `p`/`d` is the top of the stack, so no local memory is used.
struct PlanResult {
  bool possible;
  bool definite;
};

// Three-valued Bloom evaluation (kernels/filter_plan.h) of a plan whose i-th term (in op order)
// has its bits set or not as term_set(i, op) says.
template <typename TermSet>
__device__ __forceinline__ PlanResult eval_plan_terms(const FilterOp* ops, int n_ops,
                                                      TermSet term_set) {
  uint64_t p = 0, d = 0;
  int term = 0;
  for (int i = 0; i < n_ops; ++i) {
    const FilterOp op = ops[i];
    if (op.kind == FilterOpKind::kTerm) {
      const bool set = term_set(term++, op);
      p = (p << 1) | uint64_t(set);
      d = d << 1;
    } else if (op.kind == FilterOpKind::kNot) {
      const uint64_t top_p = p & 1, top_d = d & 1;
      p = (p & ~uint64_t(1)) | (top_d ^ 1);
      d = (d & ~uint64_t(1)) | (top_p ^ 1);
    } else {
      const uint64_t bp = p & 1, bd = d & 1;
      p >>= 1;
      d >>= 1;
      const uint64_t ap = p & 1, ad = d & 1;
      const bool conj = op.kind == FilterOpKind::kAnd;
      p = (p & ~uint64_t(1)) | (conj ? (ap & bp) : (ap | bp));
      d = (d & ~uint64_t(1)) | (conj ? (ad & bd) : (ad | bd));
    }
  }
  return {bool(p & 1), bool(d & 1)};
}

// The same against a signature: word(i) gives its word i, from memory or from registers.
template <typename Word>
__device__ __forceinline__ PlanResult eval_plan_bloom_words(const FilterOp* ops, int n_ops,
                                                            Word word) {
  return eval_plan_terms(ops, n_ops, [&word](int, const FilterOp& op) {
    return (word(op.word) & op.mask) == op.mask;
  });
}

// A plan of at most kCompiledTerms terms, all in the first two signature words, as a truth
// table. A Bloom term is possible or not, never definite, so the plan's (possible, definite)
// result is a function of which terms have their bits set: with the table, a row costs a few
// mask tests instead of interpreting every op (the per-pair pre-pass, with a different plan for
// each query, spent most of its time in the interpreter).
constexpr int kCompiledTerms = 6;
struct CompiledPlan {
  uint64_t possible;  // bit a: the plan is possible when term i is set iff bit i of a is
  uint64_t definite;
  uint64_t mask[kCompiledTerms];
  uint32_t second_word;  // bit i: term i is in signature word 1
  int32_t n_terms;       // -1: not compiled (too many terms, or a word past the second)

  // One thread compiles (2^terms evaluations of the ops).
  __device__ void compile(const FilterOp* ops, int n_ops) {
    int terms = 0;
    bool ok = true;
    second_word = 0;
    for (int i = 0; i < n_ops && ok; ++i) {
      if (ops[i].kind != FilterOpKind::kTerm) continue;
      ok = terms < kCompiledTerms && ops[i].word <= 1;
      if (ok) {
        mask[terms] = ops[i].mask;
        second_word |= uint32_t(ops[i].word) << terms;
        ++terms;
      }
    }
    n_terms = ok ? terms : -1;
    possible = definite = 0;
    if (!ok) return;
    for (uint32_t a = 0; a < (1u << terms); ++a) {
      const PlanResult r =
          eval_plan_terms(ops, n_ops, [a](int term, const FilterOp&) { return (a >> term) & 1u; });
      possible |= uint64_t(r.possible) << a;
      definite |= uint64_t(r.definite) << a;
    }
  }

  // Requires n_terms >= 0; w0, w1: the row's first two signature words.
  __device__ __forceinline__ PlanResult eval(uint64_t w0, uint64_t w1) const {
    uint32_t a = 0;
#pragma unroll
    for (int i = 0; i < kCompiledTerms; ++i) {
      if (i >= n_terms) break;
      const uint64_t w = (second_word >> i) & 1u ? w1 : w0;
      a |= uint32_t((w & mask[i]) == mask[i]) << i;
    }
    return {bool((possible >> a) & 1u), bool((definite >> a) & 1u)};
  }
};

// Against one signature in memory.
__device__ inline PlanResult eval_plan_bloom(const FilterOp* ops, int n_ops, const uint64_t* sig) {
  return eval_plan_bloom_words(ops, n_ops, [sig](int32_t w) { return sig[w]; });
}

// Exact evaluation of the plan, has(feature, value) telling whether the row has the pair.
template <typename Has>
__device__ __forceinline__ bool eval_plan_exact_with(const FilterOp* ops, int n_ops, Has has) {
  uint64_t s = 0;
  for (int i = 0; i < n_ops; ++i) {
    const FilterOp op = ops[i];
    if (op.kind == FilterOpKind::kTerm) {
      s = (s << 1) | uint64_t(has(op.feature, op.value));
    } else if (op.kind == FilterOpKind::kNot) {
      s ^= 1;
    } else {
      const uint64_t b = s & 1;
      s >>= 1;
      const uint64_t a = s & 1;
      s = (s & ~uint64_t(1)) | (op.kind == FilterOpKind::kAnd ? (a & b) : (a | b));
    }
  }
  return s & 1;
}

// Exact evaluation against a row's sorted (feature, value) pairs.
__device__ inline bool eval_plan_exact(const FilterOp* ops, int n_ops, const int32_t* fid,
                                       const int64_t* val, int32_t n) {
  return eval_plan_exact_with(ops, n_ops, [fid, val, n](int32_t feature, int64_t value) {
    return has_feature_pair(fid, val, n, feature, value);
  });
}

// Exact evaluation of the plan against row `row` of the feature store.
__device__ inline bool row_passes_exactly(const FeatureStoreView& f, const FilterOp* ops,
                                          int n_ops, int64_t row) {
  const int64_t off = f.offset[row];
  return eval_plan_exact(ops, n_ops, f.feature_ids + off, f.values + off, f.count[row]);
}

// row_passes_exactly for passes whose time is their chain of dependent loads, given the row's
// f.offset and f.count (read by the caller, early): a row of at most kPrefetchedPairs pairs is
// read at once and searched in registers, where the binary search made a load wait on the one
// before, a few per term. Longer rows take the binary search.
constexpr int kPrefetchedPairs = 8;
__device__ inline bool pairs_pass_exactly(const FeatureStoreView& f, const FilterOp* ops, int n_ops,
                                          int64_t off, int32_t n) {
  if (n > kPrefetchedPairs)
    return eval_plan_exact(ops, n_ops, f.feature_ids + off, f.values + off, n);
  int32_t fid[kPrefetchedPairs];
  int64_t val[kPrefetchedPairs];
#pragma unroll
  for (int i = 0; i < kPrefetchedPairs; ++i) {
    fid[i] = i < n ? f.feature_ids[off + i] : 0;
    val[i] = i < n ? f.values[off + i] : 0;
  }
  return eval_plan_exact_with(ops, n_ops, [&fid, &val, n](int32_t feature, int64_t value) {
    bool found = false;
#pragma unroll
    for (int i = 0; i < kPrefetchedPairs; ++i)
      found |= i < n && fid[i] == feature && val[i] == value;
    return found;
  });
}

// Summary test: can any row under this OR of signatures pass?
__device__ inline bool eval_plan_summary(const FilterOp* ops, int n_ops, const uint64_t* summary) {
  return eval_plan_bloom(ops, n_ops, summary).possible;
}

}  // namespace cuda
}  // namespace argent
