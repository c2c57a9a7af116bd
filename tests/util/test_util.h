// Helpers shared by the test binaries: a temporary directory, seeded random inputs, an independent
// filter-expression model, float64 references and the one top-K checker every search test uses.
// This library depends on nothing of Argent's (tests/util/index_util.h has the index helpers), so
// kernel and parser tests link without LibTorch.
//
// Everything here is deliberately naive (linear scans, std::sort, double arithmetic) so it can
// serve as the reference the library is compared against; nothing here calls the code under test
// except where a comment says so.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <utility>
#include <vector>

namespace argent::test {

// ---- Temporary directories ------------------------------------------------------------------

// A fresh directory under $TMPDIR (or /tmp), removed with its contents on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// ---- Seeds ------------------------------------------------------------------------------------

// The seed a test uses: ARGENT_TEST_SEED when set (to replay a failure), else `fallback`.
uint64_t test_seed(uint64_t fallback);
// "seed 1234 (rerun with ARGENT_TEST_SEED=1234)", for SCOPED_TRACE so failures print it.
std::string seed_note(uint64_t seed);

using Rng = std::mt19937_64;

std::vector<float> random_normal(Rng& rng, size_t n);
std::vector<int8_t> random_codes(Rng& rng, size_t n, int lo, int hi);

// ---- Filter expressions: an independent model ------------------------------------------------

using FeatureList = std::vector<std::pair<int32_t, int64_t>>;  // sorted (feature, value) pairs

struct RefExpr {
  enum class Kind { kTerm, kNot, kAnd, kOr };
  Kind kind = Kind::kTerm;
  int32_t feature = 0;
  int64_t value = 0;
  std::vector<RefExpr> children;
};

// A random tree of at most `max_depth` levels over terms feature:value with feature in
// [0, n_features) and value in [0, n_values).
RefExpr random_expr(Rng& rng, int max_depth, int n_features, int n_values);

// Renders `e` in the filter syntax with as few parentheses as the precedence NOT > AND > OR
// allows (plus, at random, some redundant ones), mixing keywords and symbols, keyword case,
// spacing and optional term weights, all drawn from `style`. A parser that gets precedence or
// associativity wrong therefore reads a different tree than `e`.
std::string render_expr(const RefExpr& e, Rng& style);

// Evaluates `e` on an item's features by linear search (the reference semantics).
bool ref_eval(const RefExpr& e, const FeatureList& features);

// ---- Items ------------------------------------------------------------------------------------

// Unique ids that are not 0..n-1: random int64 values, negative ones included, never -1.
std::vector<int64_t> random_ids(Rng& rng, int64_t n);

// A random feature set: each pair (feature in [0, n_features), value in [0, n_values)) present
// with probability p, sorted.
FeatureList random_features(Rng& rng, int n_features, int n_values, double p);

// ---- References and the top-K checker -------------------------------------------------------

struct Scored {
  int64_t id;
  double score;
};

// Sorts by score descending, then id ascending (the engine's documented total order).
void sort_reference(std::vector<Scored>& v);

// Checks one query's results ids/scores [k] against `ref`, every eligible item with its exact
// score, sorted by sort_reference:
//  * min(k, |ref|) results, then padding (id -1, score -inf);
//  * no duplicate ids, every id eligible, every score within `tol` * max(1, |exact|) of its
//    item's exact score;
//  * scores non-increasing, equal scores in ascending id order;
//  * the result set is the best min(k, |ref|) items, except that items whose exact scores lie
//    within the tolerance of the K-th best exact score may be swapped (proven near-ties).
::testing::AssertionResult check_topk(const int64_t* ids, const float* scores, int64_t k,
                                      const std::vector<Scored>& ref, double tol);

// Fraction of the reference's best min(k, |ref|) ids found among ids [k].
double recall_at_k(const int64_t* ids, int64_t k, const std::vector<Scored>& ref);

}  // namespace argent::test
