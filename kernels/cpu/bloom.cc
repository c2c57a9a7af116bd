#include "kernels/cpu/bloom.h"

#include <algorithm>
#include <cstring>

#include "kernels/layout.h"

namespace argent {
namespace {

// The operand stack of a postfix evaluation over `Value`s; depth is bounded by kMaxFilterDepth,
// which the filter compiler enforces.
template <typename Value, typename TermFn, typename NotFn, typename AndFn, typename OrFn>
Value run_plan(const FilterPlanView& plan, TermFn term, NotFn negate, AndFn conj, OrFn disj) {
  Value stack[kMaxFilterDepth];
  int top = 0;
  for (int i = 0; i < plan.n_ops; ++i) {
    const FilterOp& op = plan.ops[i];
    switch (op.kind) {
      case FilterOpKind::kTerm:
        stack[top++] = term(op);
        break;
      case FilterOpKind::kNot:
        stack[top - 1] = negate(stack[top - 1]);
        break;
      case FilterOpKind::kAnd:
        --top;
        stack[top - 1] = conj(stack[top - 1], stack[top]);
        break;
      case FilterOpKind::kOr:
        --top;
        stack[top - 1] = disj(stack[top - 1], stack[top]);
        break;
    }
  }
  return stack[0];
}

}  // namespace

void bloom_signature(const BloomParams& p, const int32_t* feature_ids, const int64_t* values,
                     int32_t n_features, uint64_t* sig) {
  std::memset(sig, 0, sizeof(uint64_t) * size_t(p.words));
  for (int32_t i = 0; i < n_features; ++i) {
    const BloomTerm t = bloom_term(p, feature_ids[i], values[i]);
    sig[t.word] |= t.mask;
  }
}

void bloom_signatures(const BloomParams& p, const FeatureStoreView& f, int64_t n_rows,
                      uint64_t* sigs) {
#pragma omp parallel for schedule(static) if (n_rows > 16384)
  for (int64_t r = 0; r < n_rows; ++r) {
    bloom_signature(p, f.feature_ids + f.offset[r], f.values + f.offset[r], f.count[r],
                    sigs + r * p.words);
  }
}

BlockEligibility eval_plan_block(const FilterPlanView& plan, const uint64_t* sigs, int words) {
  if (plan.n_ops == 0) return {0xFFFF, 0xFFFF};
  return run_plan<BlockEligibility>(
      plan,
      [&](const FilterOp& op) {
        uint16_t bits = 0;
        for (int r = 0; r < kBlockRows; ++r)
          if ((sigs[r * words + op.word] & op.mask) == op.mask) bits |= uint16_t(1u << r);
        return BlockEligibility{bits, 0};
      },
      [](BlockEligibility a) {
        return BlockEligibility{uint16_t(~a.definite), uint16_t(~a.possible)};
      },
      [](BlockEligibility a, BlockEligibility b) {
        return BlockEligibility{uint16_t(a.possible & b.possible), uint16_t(a.definite & b.definite)};
      },
      [](BlockEligibility a, BlockEligibility b) {
        return BlockEligibility{uint16_t(a.possible | b.possible), uint16_t(a.definite | b.definite)};
      });
}

bool eval_plan_summary(const FilterPlanView& plan, const uint64_t* summary, int words) {
  (void)words;
  if (plan.n_ops == 0) return true;
  struct V {
    bool possible, definite;
  };
  return run_plan<V>(
             plan,
             [&](const FilterOp& op) { return V{(summary[op.word] & op.mask) == op.mask, false}; },
             [](V a) { return V{!a.definite, !a.possible}; },
             [](V a, V b) { return V{a.possible && b.possible, a.definite && b.definite}; },
             [](V a, V b) { return V{a.possible || b.possible, a.definite || b.definite}; })
      .possible;
}

bool eval_plan_exact(const FilterPlanView& plan, const FeatureStoreView& f, int64_t row) {
  if (plan.n_ops == 0) return true;
  const int32_t* fid = f.feature_ids + f.offset[row];
  const int64_t* val = f.values + f.offset[row];
  const int32_t n = f.count[row];
  return run_plan<bool>(
      plan,
      [&](const FilterOp& op) { return has_feature_pair(fid, val, n, op.feature, op.value); },
      [](bool a) { return !a; }, [](bool a, bool b) { return a && b; },
      [](bool a, bool b) { return a || b; });
}

}  // namespace argent
