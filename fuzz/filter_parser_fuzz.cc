// Fuzzes the filter expression parser and compiler (shard/filter.h) with arbitrary text.
// Properties checked on every input that parses:
//   - to_string(e) parses back to the same tree (the canonical form is a fixed point);
//   - compile_filter either throws Error (too many ops or too deep) or gives a plan whose
//     evaluation on random feature sets never disagrees with the reference evaluator where the
//     Bloom test is exact (an item's own terms always pass: no false negatives);
//   - filter_problem (the gateway's check) agrees with parse_filter on validity.
// Anything else (a crash, a sanitizer report, an exception other than argent::Error) is a bug.
#include <cstddef>
#include <cstdint>
#include <algorithm>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/config.h"
#include "coordinator/request_validation.h"
#include "kernels/cpu/bloom.h"
#include "shard/filter.h"

namespace {

bool same_tree(const argent::FilterExpr& a, const argent::FilterExpr& b) {
  if (a.kind != b.kind || a.children.size() != b.children.size()) return false;
  if (a.kind == argent::FilterExpr::Kind::kTerm) return a.feature == b.feature && a.value == b.value;
  for (size_t i = 0; i < a.children.size(); ++i)
    if (!same_tree(a.children[i], b.children[i])) return false;
  return true;
}

void collect_terms(const argent::FilterExpr& e, argent::FeatureSet* out) {
  if (e.kind == argent::FilterExpr::Kind::kTerm) out->insert({e.feature, e.value});
  for (const auto& c : e.children) collect_terms(c, out);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  argent::FilterExpr expr;
  bool parsed = false, valid = true;
  try {
    parsed = argent::parse_filter(text, &expr);
  } catch (const argent::Error&) {
    valid = false;
  }
  const argent::GatewayConfig limits;  // defaults: the parser's own limits
  const std::string problem = argent::filter_problem(text, limits);
  // The gateway refuses whatever the parser refuses; it may refuse more only by its own depth
  // limit, which counts the tree's depth (a chain of NOTs nests there, not in the parser's count).
  if (!valid && problem.empty()) __builtin_trap();
  if (valid && !problem.empty() && problem.rfind("filter: nested", 0) != 0) __builtin_trap();
  if (!parsed) return 0;

  argent::FilterExpr again;
  bool reparsed = false;
  try {
    reparsed = argent::parse_filter(argent::to_string(expr), &again);
  } catch (const argent::Error&) {
    // to_string parenthesises every NOT, so a long NOT chain the parser accepted can render
    // deeper than its nesting limit (fuzz finding, corpus/filter_parser/regression-not-chain-depth).
    return 0;
  }
  if (!reparsed || !same_tree(expr, again)) __builtin_trap();

  argent::BloomParams bloom;
  bloom.words = 2;
  bloom.hashes = 3;
  bloom.seed = 42;
  argent::FilterPlan plan;
  try {
    plan = argent::compile_filter(expr, bloom);
  } catch (const argent::Error&) {
    return 0;  // over kMaxFilterOps or kMaxFilterDepth: a clean refusal
  }
  // Feature sets made of the expression's own terms (every other one dropped, by the input's
  // length parity, so both outcomes occur): the compiled plan's exact evaluation must equal the
  // reference evaluator, and its Bloom test must pass every row that truly matches.
  argent::FeatureSet all;
  collect_terms(expr, &all);
  for (int variant = 0; variant < 2; ++variant) {
    std::vector<int32_t> ids;
    std::vector<int64_t> values;
    argent::FeatureSet kept;
    size_t i = 0;
    for (const auto& [feature, value] : all) {
      if (variant == 1 && (i++ + size) % 2 == 0) continue;
      kept.insert({feature, value});
      ids.push_back(feature);
      values.push_back(value);
    }
    const int64_t offset = 0;
    const int32_t count = int32_t(ids.size());
    argent::FeatureStoreView store{&offset, &count, ids.data(), values.data()};
    const bool reference = argent::evaluate(expr, kept);
    if (argent::eval_plan_exact(plan.view(), store, 0) != reference) __builtin_trap();
    std::vector<uint64_t> sigs(16 * size_t(bloom.words));
    argent::bloom_signature(bloom, ids.data(), values.data(), count, sigs.data());
    for (int row = 1; row < 16; ++row)
      std::copy(sigs.begin(), sigs.begin() + bloom.words, sigs.begin() + row * bloom.words);
    const argent::BlockEligibility e = argent::eval_plan_block(plan.view(), sigs.data(), bloom.words);
    if (reference && (e.possible & 1) == 0) __builtin_trap();  // a Bloom false negative
    if (!reference && (e.definite & 1) != 0) __builtin_trap();  // "definite" must be exact
  }
  return 0;
}
