// A compiled eligibility filter, as the kernels evaluate it.
//
// A filter expression ("1:10 AND NOT (2:20 OR 3:30)") compiles to a postfix program of FilterOps.
// A kTerm pushes "the item has feature `feature` with value `value`"; kNot, kAnd, kOr pop one or
// two operands and push the result. The same program is evaluated three ways:
//
//  * against Bloom signatures, in three-valued logic: each value is a pair (possible, definite).
//    A term is (bloom bits all set, false): the Bloom filter can prove absence, never presence.
//    NOT (p, d) = (!d, !p); AND and OR combine each component. An item passes when `possible`;
//    `definite` items need no exact check. This never rejects a true match, also under NOT
//    (treating NOT as "bloom bits not all set" would reject items whose bits are set by a false
//    positive, which is the bug that makes SilverTorch's NOT drop true matches).
//  * against a list's Bloom summary (the OR of its items' signatures): a list whose summary is
//    not `possible` holds no eligible item and is skipped whole.
//  * exactly, against the item's feature set, for candidates that are possible but not definite.
#pragma once

#include <cstdint>

#include "common/hash.h"

namespace argent {

enum class FilterOpKind : int32_t { kTerm = 0, kNot = 1, kAnd = 2, kOr = 3 };

struct FilterOp {
  FilterOpKind kind;
  int32_t feature;  // kTerm only
  int64_t value;    // kTerm only
  int32_t word;     // kTerm: the 64-bit signature word the term's bits live in
  int32_t reserved;
  uint64_t mask;    // kTerm: the term's bits in that word
};
static_assert(sizeof(FilterOp) == 32, "FilterOp is broadcast between ranks as raw bytes");

constexpr int kMaxFilterOps = 1024;
constexpr int kMaxFilterDepth = 64;  // operand stack depth

struct FilterPlanView {
  const FilterOp* ops = nullptr;
  int n_ops = 0;  // 0: no filter, every item is eligible
};

// Bloom parameters of an index. Each (feature, value) pair sets `hashes` bits inside one 64-bit
// word of a `words`-word signature ("blocked" Bloom filter: one word per term keeps both the
// signature update and the test to a single word; docs/architecture.md has the false-positive
// maths).
struct BloomParams {
  int32_t words = 2;
  int32_t hashes = 3;
  uint64_t seed = 0x5EEDB100Full;
};

struct BloomTerm {
  int32_t word;
  uint64_t mask;
};

ARGENT_HOST_DEVICE inline BloomTerm bloom_term(const BloomParams& p, int32_t feature,
                                               int64_t value) {
  const uint64_t h = feature_hash(feature, value, p.seed);
  BloomTerm t;
  t.word = int32_t((h >> 48) % uint64_t(p.words));
  t.mask = 0;
  // Double hashing over the low 48 bits: bit_i = (h1 + i * h2) mod 64, h2 odd so the bits differ.
  const uint32_t h1 = uint32_t(h & 0xFFFFFF);
  const uint32_t h2 = uint32_t((h >> 24) & 0xFFFFFF) | 1u;
  for (int i = 0; i < p.hashes; ++i) t.mask |= uint64_t(1) << ((h1 + uint32_t(i) * h2) & 63u);
  return t;
}

// Whether a row's (feature, value) pairs, sorted and n long, contain (feature, value): the term
// test of the exact evaluation, on the CPU and the GPU.
ARGENT_HOST_DEVICE inline bool has_feature_pair(const int32_t* fid, const int64_t* val, int32_t n,
                                                int32_t feature, int64_t value) {
  int32_t lo = 0, hi = n;  // binary search for the first pair >= (feature, value)
  while (lo < hi) {
    const int32_t mid = (lo + hi) / 2;
    if (fid[mid] < feature || (fid[mid] == feature && val[mid] < value)) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return lo < n && fid[lo] == feature && val[lo] == value;
}

}  // namespace argent
