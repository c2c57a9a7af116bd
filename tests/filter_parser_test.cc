// The filter parser (shard/filter.h): SilverTorch syntax, precedence NOT > AND > OR checked by
// evaluating random expressions against an independent evaluator, and rejection of malformed
// expressions with the 1-based position of the problem.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/error.h"
#include "kernels/cpu/bloom.h"
#include "shard/filter.h"
#include "tests/util/test_util.h"

namespace argent {
namespace {

using test::Rng;

std::string canonical(const std::string& text) {
  FilterExpr e;
  EXPECT_TRUE(parse_filter(text, &e)) << text;
  return to_string(e);
}

TEST(FilterParser, AcceptsTheSyntaxWithItsPrecedence) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"1:10", "1:10"},
      {"1:10 AND 2:20", "(1:10 AND 2:20)"},
      {"1:10 & 2:20", "(1:10 AND 2:20)"},
      {"1:10|2:20", "(1:10 OR 2:20)"},
      {"1:1 OR 2:2 AND 3:3", "(1:1 OR (2:2 AND 3:3))"},  // AND binds tighter than OR
      {"1:1 AND 2:2 OR 3:3", "((1:1 AND 2:2) OR 3:3)"},
      {"NOT 1:1 AND 2:2", "(NOT 1:1 AND 2:2)"},  // NOT binds tighter than AND
      {"NOT 1:1 OR 2:2", "(NOT 1:1 OR 2:2)"},
      {"!1:1 | 2:2 & !3:3", "(NOT 1:1 OR (2:2 AND NOT 3:3))"},
      {"NOT (1:1 OR 2:2)", "NOT (1:1 OR 2:2)"},
      {"(1:1 OR 2:2) AND 3:3", "((1:1 OR 2:2) AND 3:3)"},
      {"1:1 & 2:2 & 3:3", "(1:1 AND 2:2 AND 3:3)"},
      {"1:1 | 2:2 | 3:3 & 4:4", "(1:1 OR 2:2 OR (3:3 AND 4:4))"},
      {"!!1:1", "NOT NOT 1:1"},
      {"not not 1:1", "NOT NOT 1:1"},
      {"1:1 and Not 2:-5", "(1:1 AND NOT 2:-5)"},  // keywords in any case, negative values
      {"  3:100:0.75  ", "3:100"},                 // weight accepted and ignored
      {"3:+7", "3:7"},
      {"((((1:1))))", "1:1"},
      {"2147483647:9223372036854775807", "2147483647:9223372036854775807"},
      {"0:-9223372036854775808", "0:-9223372036854775808"},
      {"\t1:1\nOR\r2:2", "(1:1 OR 2:2)"},
  };
  for (const auto& [text, want] : cases) {
    SCOPED_TRACE(text);
    EXPECT_EQ(canonical(text), want);
    EXPECT_EQ(canonical(canonical(text)), want) << "to_string does not round-trip";
  }
}

// Hand-picked items where a parser with the wrong precedence or associativity gives a different
// answer than the correct one.
TEST(FilterParser, PrecedenceDecidesTheResult) {
  struct Case {
    std::string text;
    FeatureSet item;
    bool want;
  };
  const std::vector<Case> cases = {
      {"1:1 OR 2:2 AND 3:3", {{1, 1}}, true},  // left-to-right would give false
      {"1:1 AND 2:2 OR 3:3", {{3, 3}}, true},
      {"NOT 1:1 AND 2:2", {{1, 1}}, false},        // NOT over the AND would give true
      {"NOT 1:1 OR 2:2", {{1, 1}, {2, 2}}, true},  // NOT over the OR would give false
      {"!1:1 & !2:2", {}, true},
      {"NOT (1:1 OR 2:2)", {{2, 2}}, false},
      {"1:1 & (2:2 | 3:3)", {{1, 1}, {3, 3}}, true},
      {"1:1 & 2:2 | 3:3", {{3, 3}}, true},
      {"1:1 & (2:2 | 3:3)", {{3, 3}}, false},
  };
  for (const Case& c : cases) {
    FilterExpr e;
    ASSERT_TRUE(parse_filter(c.text, &e));
    EXPECT_EQ(evaluate(e, c.item), c.want) << c.text;
  }
}

// Random trees rendered with minimal parentheses (the renderer relies on NOT > AND > OR), mixed
// keywords/symbols/case/spacing and optional weights: the parsed expression must evaluate like
// the tree on random items, through both argent::evaluate and the compiled plan's exact check.
TEST(FilterParser, RandomExpressionsEvaluateLikeTheIndependentModel) {
  const uint64_t seed = test::test_seed(2024);
  SCOPED_TRACE(test::seed_note(seed));
  Rng rng(seed);
  constexpr int kFeatures = 4, kValues = 3;
  std::vector<test::FeatureList> items;
  std::bernoulli_distribution present(0.4);
  for (int i = 0; i < 64; ++i) {
    test::FeatureList f;
    for (int32_t a = 0; a < kFeatures; ++a)
      for (int64_t v = 0; v < kValues; ++v)
        if (present(rng)) f.emplace_back(a, v);
    items.push_back(f);
  }
  int64_t failures = 0, trues = 0, total = 0;
  for (int t = 0; t < 2000 && failures < 5; ++t) {
    const test::RefExpr expr = test::random_expr(rng, 6, kFeatures, kValues);
    const std::string text = test::render_expr(expr, rng);
    FilterExpr parsed;
    ASSERT_TRUE(parse_filter(text, &parsed)) << text;
    const FilterPlan plan = compile_filter(parsed, BloomParams{});
    FilterExpr reparsed;
    ASSERT_TRUE(parse_filter(to_string(parsed), &reparsed));
    EXPECT_EQ(to_string(reparsed), to_string(parsed));
    for (const test::FeatureList& f : items) {
      const bool want = test::ref_eval(expr, f);
      const FeatureSet set(f.begin(), f.end());
      std::vector<int32_t> fid;
      std::vector<int64_t> val;
      for (const auto& [a, v] : f) {
        fid.push_back(a);
        val.push_back(v);
      }
      const int64_t offset = 0;
      const int32_t count = int32_t(f.size());
      const FeatureStoreView store{&offset, &count, fid.data(), val.data()};
      const bool got = evaluate(parsed, set);
      const bool got_plan = eval_plan_exact(plan.view(), store, 0);
      if ((got != want || got_plan != want) && failures++ < 5)
        ADD_FAILURE() << "\"" << text << "\" parsed as " << to_string(parsed) << ": evaluate "
                      << got << ", plan " << got_plan << ", reference " << want;
      trues += want;
      ++total;
    }
  }
  EXPECT_EQ(failures, 0);
  // The random expressions are neither always true nor always false.
  EXPECT_GT(trues, total / 10);
  EXPECT_LT(trues, total - total / 10);
}

TEST(FilterParser, EmptyExpressionMeansNoFilter) {
  // Documented in shard/filter.h: an empty or all-blank expression is "no filter", not an error.
  FilterExpr e;
  EXPECT_FALSE(parse_filter("", &e));
  EXPECT_FALSE(parse_filter(" \t ", &e));
  EXPECT_TRUE(compile_filter("", BloomParams{}).empty());
}

struct BadCase {
  std::string text;
  std::vector<std::string> fragments;  // each must appear in the message
};

void PrintTo(const BadCase& c, std::ostream* os) {
  *os << '"' << (c.text.size() < 80 ? c.text : c.text.substr(0, 40) + "...") << '"';
}

class FilterParserErrorTest : public ::testing::TestWithParam<BadCase> {};

TEST_P(FilterParserErrorTest, RejectedWithPosition) {
  const BadCase& c = GetParam();
  FilterExpr e;
  try {
    parse_filter(c.text, &e);
    FAIL() << "accepted \"" << c.text << "\" as " << to_string(e);
  } catch (const Error& err) {
    EXPECT_EQ(err.code(), ErrorCode::kInvalidArgument);
    const std::string msg = err.what();
    EXPECT_EQ(msg.rfind("filter: ", 0), 0u) << msg;
    for (const std::string& f : c.fragments)
      EXPECT_NE(msg.find(f), std::string::npos)
          << "message \"" << msg << "\" lacks \"" << f << "\"";
    if (c.text.size() < 200)  // the message quotes the expression
      EXPECT_NE(msg.find("\"" + c.text + "\""), std::string::npos) << msg;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Malformed, FilterParserErrorTest,
    ::testing::Values(
        BadCase{"1:", {"expected feature value", "at position 3"}},
        BadCase{"1:2 AND", {"unexpected end", "at position 8"}},
        BadCase{"(1:2", {"expected ')'", "at position 5", "'(' at position 1"}},
        BadCase{"1:2)", {"unmatched ')'", "at position 4"}},
        BadCase{"abc", {"expected a term", "at position 1"}},
        BadCase{"1:2 OR OR 3:4", {"expected a term", "at position 8"}},
        BadCase{"()", {"expected a term", "at position 2"}},
        BadCase{"1:2 3:4", {"expected AND, OR", "at position 5"}},
        BadCase{"1:2 XOR 3:4", {"at position 5"}},
        BadCase{"NOT", {"unexpected end", "at position 4"}},
        BadCase{"1:2 AND NOT", {"unexpected end", "at position 12"}},
        BadCase{"& 1:2", {"expected a term", "at position 1"}},
        BadCase{"-1:2", {"feature id -1 is out of range", "at position 1"}},
        BadCase{"2147483648:1", {"feature id", "out of range", "at position 1"}},
        BadCase{"1:x", {"expected feature value", "at position 3"}},
        BadCase{"1:99999999999999999999", {"out of range", "at position 3"}},
        BadCase{"1:2:", {"weight", "at position 5"}},
        BadCase{"1", {"expected ':'", "at position 2"}},
        BadCase{"1:2abc", {"unexpected character 'a'", "at position 4"}},
        BadCase{"1:2 AND (3:4 OR 5:6", {"at position 20", "'(' at position 9"}},
        BadCase{std::string(70, '(') + "1:1" + std::string(70, ')'), {"nested deeper than 64"}},
        BadCase{[] {
                  std::string s;
                  for (int i = 0; i < 70; ++i) s += "NOT ";
                  return s + "1:1";
                }(),
                {"nested deeper than 64"}},
        BadCase{std::string(kMaxFilterLength + 1, ' ') + "1:1", {"exceeds the limit"}}),
    [](const auto& info) { return "case" + std::to_string(info.index); });

// A client's NUL or escape byte is quoted as \xNN: it can neither cut the message short nor
// reach a terminal or log raw.
TEST(FilterParser, ControlBytesAreEscapedInMessages) {
  const std::string text("1:2\0\x1b[2J", 8);
  FilterExpr e;
  try {
    parse_filter(text, &e);
    FAIL() << "accepted a filter with a NUL byte";
  } catch (const Error& err) {
    const std::string msg = err.what();
    EXPECT_EQ(msg.find('\0'), std::string::npos) << "raw NUL in the message";
    EXPECT_EQ(msg.find('\x1b'), std::string::npos) << "raw escape in the message";
    EXPECT_NE(msg.find("\"1:2\\x00\\x1b[2J\""), std::string::npos) << msg;
  }
}

TEST(FilterCompiler, RejectsPlansBeyondTheKernelLimits) {
  // More than kMaxFilterOps operations.
  std::string wide = "1:0";
  for (int i = 1; i <= kMaxFilterOps / 2 + 1; ++i) wide += " OR 1:" + std::to_string(i);
  try {
    compile_filter(wide, BloomParams{});
    FAIL() << "a plan of more than " << kMaxFilterOps << " ops was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("more than 1024 operations"), std::string::npos)
        << e.what();
  }
  // An evaluation stack deeper than kMaxFilterDepth (built directly: the parser's own nesting
  // limit would stop the text first).
  FilterExpr deep;
  deep.kind = FilterExpr::Kind::kTerm;
  deep.feature = 1;
  for (int i = 0; i < kMaxFilterDepth + 5; ++i) {
    FilterExpr parent;
    parent.kind = FilterExpr::Kind::kAnd;
    FilterExpr leaf;
    leaf.feature = 2;
    leaf.value = i;
    parent.children.push_back(leaf);
    parent.children.push_back(std::move(deep));
    deep = std::move(parent);
  }
  try {
    compile_filter(deep, BloomParams{});
    FAIL() << "a plan needing a stack deeper than " << kMaxFilterDepth << " was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("evaluation stack"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace argent
