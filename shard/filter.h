// Eligibility filter expressions, in SilverTorch's syntax:
//
//   expression = or_expr
//   or_expr    = and_expr { ("OR" | "|") and_expr }
//   and_expr   = unary { ("AND" | "&") unary }
//   unary      = ("NOT" | "!") unary | primary
//   primary    = "(" expression ")" | term
//   term       = FEATURE ":" VALUE [ ":" WEIGHT ]
//
// FEATURE is an int32 >= 0, VALUE an int64 (may be negative), WEIGHT a number accepted for
// compatibility and ignored for eligibility. Keywords are case-insensitive. Precedence is
// NOT > AND > OR. "1:10 & !2:20" is true for an item that has feature 1 with value 10 and not
// feature 2 with value 20. An empty or all-blank expression means "no filter".
#pragma once

#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "kernels/filter_plan.h"

namespace argent {

constexpr size_t kMaxFilterLength = 65536;  // characters

struct FilterExpr {
  enum class Kind { kTerm, kNot, kAnd, kOr };
  Kind kind = Kind::kTerm;
  int32_t feature = 0;
  int64_t value = 0;
  std::vector<FilterExpr> children;  // kNot: 1; kAnd/kOr: 2 or more
};

// Parses `text`. Returns false for an empty expression. Throws Error(kInvalidArgument) with the
// 1-based character position of the problem, e.g.
//   filter: expected ')' (to close the '(' at position 1) at position 15: "(1:10 AND 2:20"
bool parse_filter(const std::string& text, FilterExpr* out);

// The expression back in canonical text (fully parenthesized); parse_filter(to_string(e)) == e.
std::string to_string(const FilterExpr& expr);

using FeatureSet = std::set<std::pair<int32_t, int64_t>>;

// The reference semantics: evaluates `expr` on a feature set.
bool evaluate(const FilterExpr& expr, const FeatureSet& features);

// A compiled filter (kernels/filter_plan.h). Owns its ops.
struct FilterPlan {
  std::vector<FilterOp> ops;
  FilterPlanView view() const { return FilterPlanView{ops.data(), int(ops.size())}; }
  bool empty() const { return ops.empty(); }
};

// Compiles for an index's Bloom parameters. Throws when the plan exceeds kMaxFilterOps ops or
// kMaxFilterDepth nesting.
FilterPlan compile_filter(const FilterExpr& expr, const BloomParams& bloom);

// parse + compile; an empty expression gives an empty plan.
FilterPlan compile_filter(const std::string& text, const BloomParams& bloom);

}  // namespace argent
