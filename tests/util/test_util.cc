#include "tests/util/test_util.h"

#include <ftw.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>
#include <unordered_set>

namespace argent::test {

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string templ = std::string(base && *base ? base : "/tmp") + "/argent-test-XXXXXX";
  if (::mkdtemp(templ.data()) == nullptr) throw std::runtime_error("mkdtemp failed: " + templ);
  path_ = templ;
}

TempDir::~TempDir() {
  // nftw rather than std::filesystem::remove_all: a PyTorch wheel's libtorch.so exports its own
  // std::filesystem symbols, and binding to them crashes (seen on the GPU machine).
  ::nftw(
      path_.c_str(),
      [](const char* p, const struct stat*, int, struct FTW*) { return ::remove(p), 0; },
      16, FTW_DEPTH | FTW_PHYS);
}

uint64_t test_seed(uint64_t fallback) {
  const char* env = std::getenv("ARGENT_TEST_SEED");
  if (env == nullptr || *env == '\0') return fallback;
  return std::strtoull(env, nullptr, 10);
}

std::string seed_note(uint64_t seed) {
  return "seed " + std::to_string(seed) + " (rerun with ARGENT_TEST_SEED=" + std::to_string(seed) +
         ")";
}

std::vector<float> random_normal(Rng& rng, size_t n) {
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

std::vector<int8_t> random_codes(Rng& rng, size_t n, int lo, int hi) {
  std::uniform_int_distribution<int> dist(lo, hi);
  std::vector<int8_t> v(n);
  for (int8_t& x : v) x = int8_t(dist(rng));
  return v;
}

// ---- Filter expressions ----------------------------------------------------------------------

RefExpr random_expr(Rng& rng, int max_depth, int n_features, int n_values) {
  RefExpr e;
  std::uniform_int_distribution<int> kind_dist(0, 3);
  const int kind = max_depth <= 1 ? 0 : kind_dist(rng);
  if (kind == 0) {
    e.kind = RefExpr::Kind::kTerm;
    e.feature = int32_t(std::uniform_int_distribution<int>(0, n_features - 1)(rng));
    e.value = std::uniform_int_distribution<int64_t>(0, n_values - 1)(rng);
    return e;
  }
  if (kind == 1) {
    e.kind = RefExpr::Kind::kNot;
    e.children.push_back(random_expr(rng, max_depth - 1, n_features, n_values));
    return e;
  }
  e.kind = kind == 2 ? RefExpr::Kind::kAnd : RefExpr::Kind::kOr;
  const int n = std::uniform_int_distribution<int>(2, 3)(rng);
  for (int i = 0; i < n; ++i)
    e.children.push_back(random_expr(rng, max_depth - 1, n_features, n_values));
  return e;
}

namespace {

// Binding strength: a child needs parentheses when it binds more loosely than its context.
int precedence(const RefExpr& e) {
  switch (e.kind) {
    case RefExpr::Kind::kOr:
      return 1;
    case RefExpr::Kind::kAnd:
      return 2;
    case RefExpr::Kind::kNot:
      return 3;
    case RefExpr::Kind::kTerm:
      return 4;
  }
  return 0;
}

std::string spell(Rng& style, const char* keyword, const char* symbol) {
  switch (std::uniform_int_distribution<int>(0, 3)(style)) {
    case 0:
      return std::string(" ") + symbol + " ";
    case 1:
      return symbol;
    case 2: {
      std::string lower(keyword);
      for (char& c : lower) c = char(std::tolower(static_cast<unsigned char>(c)));
      return " " + lower + " ";
    }
    default:
      return std::string(" ") + keyword + " ";
  }
}

std::string render_at(const RefExpr& e, int context, Rng& style) {
  std::string s;
  switch (e.kind) {
    case RefExpr::Kind::kTerm:
      s = std::to_string(e.feature) + ":" + std::to_string(e.value);
      if (std::uniform_int_distribution<int>(0, 9)(style) == 0) s += ":0.5";  // ignored weight
      break;
    case RefExpr::Kind::kNot: {
      // "NOT" needs a space before an operand; "!" does not.
      const bool keyword = std::uniform_int_distribution<int>(0, 1)(style) == 0;
      s = (keyword ? "NOT " : "!") + render_at(e.children[0], 3, style);
      break;
    }
    case RefExpr::Kind::kAnd:
    case RefExpr::Kind::kOr: {
      const bool is_and = e.kind == RefExpr::Kind::kAnd;
      // Children of the same kind could go unparenthesized (the operators are associative), but
      // a child must be parenthesized when it binds more loosely than this operator.
      for (size_t i = 0; i < e.children.size(); ++i) {
        if (i > 0) s += is_and ? spell(style, "AND", "&") : spell(style, "OR", "|");
        s += render_at(e.children[i], is_and ? 2 : 1, style);
      }
      break;
    }
  }
  const bool needed = precedence(e) < context;
  const bool redundant = std::uniform_int_distribution<int>(0, 7)(style) == 0;
  return needed || redundant ? "(" + s + ")" : s;
}

}  // namespace

std::string render_expr(const RefExpr& e, Rng& style) { return render_at(e, 0, style); }

bool ref_eval(const RefExpr& e, const FeatureList& features) {
  switch (e.kind) {
    case RefExpr::Kind::kTerm:
      for (const auto& [f, v] : features)
        if (f == e.feature && v == e.value) return true;
      return false;
    case RefExpr::Kind::kNot:
      return !ref_eval(e.children[0], features);
    case RefExpr::Kind::kAnd: {
      bool all = true;
      for (const RefExpr& c : e.children) all = ref_eval(c, features) && all;
      return all;
    }
    case RefExpr::Kind::kOr: {
      bool any = false;
      for (const RefExpr& c : e.children) any = ref_eval(c, features) || any;
      return any;
    }
  }
  return false;
}

// ---- Items -------------------------------------------------------------------------------------

std::vector<int64_t> random_ids(Rng& rng, int64_t n) {
  std::uniform_int_distribution<int64_t> dist(-(int64_t(1) << 40), int64_t(1) << 40);
  std::unordered_set<int64_t> seen;
  std::vector<int64_t> ids;
  while (int64_t(ids.size()) < n) {
    const int64_t id = dist(rng);
    if (id != -1 && seen.insert(id).second) ids.push_back(id);
  }
  return ids;
}

FeatureList random_features(Rng& rng, int n_features, int n_values, double p) {
  std::bernoulli_distribution present(p);
  FeatureList pairs;
  for (int32_t f = 0; f < n_features; ++f)
    for (int64_t v = 0; v < n_values; ++v)
      if (present(rng)) pairs.emplace_back(f, v);
  return pairs;
}

// ---- Top-K checking ---------------------------------------------------------------------------

void sort_reference(std::vector<Scored>& v) {
  std::sort(v.begin(), v.end(), [](const Scored& a, const Scored& b) {
    return a.score > b.score || (a.score == b.score && a.id < b.id);
  });
}

::testing::AssertionResult check_topk(const int64_t* ids, const float* scores, int64_t k,
                                      const std::vector<Scored>& ref, double tol) {
  const int64_t n_valid = std::min<int64_t>(k, int64_t(ref.size()));
  std::map<int64_t, double> exact;
  for (const Scored& s : ref) exact[s.id] = s.score;
  auto slack = [tol](double x) { return tol * std::max(1.0, std::fabs(x)); };
  std::set<int64_t> seen;
  for (int64_t i = 0; i < k; ++i) {
    if (i >= n_valid) {
      if (ids[i] != -1 || !(std::isinf(scores[i]) && scores[i] < 0))
        return ::testing::AssertionFailure()
               << "slot " << i << " should be padding (only " << n_valid
               << " eligible items) but holds id " << ids[i] << " score " << scores[i];
      continue;
    }
    if (ids[i] == -1)
      return ::testing::AssertionFailure()
             << "slot " << i << " is padding but " << n_valid << " results were expected";
    if (!seen.insert(ids[i]).second)
      return ::testing::AssertionFailure()
             << "id " << ids[i] << " returned twice (slot " << i << ")";
    auto it = exact.find(ids[i]);
    if (it == exact.end())
      return ::testing::AssertionFailure()
             << "slot " << i << ": id " << ids[i] << " is not an eligible item";
    if (!(std::fabs(double(scores[i]) - it->second) <= slack(it->second)))
      return ::testing::AssertionFailure() << "slot " << i << ": id " << ids[i] << " has score "
                                           << scores[i] << ", exact score " << it->second;
    if (i > 0 && (scores[i] > scores[i - 1] || (scores[i] == scores[i - 1] && ids[i] < ids[i - 1])))
      return ::testing::AssertionFailure()
             << "slots " << i - 1 << ", " << i << " out of order: (" << scores[i - 1] << ", id "
             << ids[i - 1] << ") then (" << scores[i] << ", id " << ids[i] << ")";
  }
  if (n_valid == 0) return ::testing::AssertionSuccess();
  const double kth = ref[size_t(n_valid - 1)].score;
  // Every returned item is no worse than the K-th best beyond the tolerance...
  for (int64_t i = 0; i < n_valid; ++i) {
    const double s = exact[ids[i]];
    if (s < kth - 2 * slack(kth))
      return ::testing::AssertionFailure()
             << "slot " << i << ": id " << ids[i] << " (exact " << s
             << ") is clearly worse than the exact K-th best score " << kth;
  }
  // ...and every item clearly better than the K-th best is returned.
  for (int64_t r = 0; r < n_valid; ++r) {
    if (ref[size_t(r)].score <= kth + 2 * slack(kth)) break;
    if (seen.count(ref[size_t(r)].id) == 0)
      return ::testing::AssertionFailure()
             << "missing id " << ref[size_t(r)].id << " (exact rank " << r << ", score "
             << ref[size_t(r)].score << " > K-th best " << kth << ")";
  }
  return ::testing::AssertionSuccess();
}

double recall_at_k(const int64_t* ids, int64_t k, const std::vector<Scored>& ref) {
  const int64_t n = std::min<int64_t>(k, int64_t(ref.size()));
  if (n == 0) return 1.0;
  std::unordered_set<int64_t> got(ids, ids + k);
  int64_t hit = 0;
  for (int64_t r = 0; r < n; ++r) hit += got.count(ref[size_t(r)].id) ? 1 : 0;
  return double(hit) / double(n);
}

}  // namespace argent::test
