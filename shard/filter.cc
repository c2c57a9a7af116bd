#include "shard/filter.h"

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <limits>

#include "common/error.h"

namespace argent {
namespace {

// The text as an error message may quote it: control and non-ASCII bytes become \xNN, so a NUL
// or an escape sequence in a client's filter cannot cut or garble the message (or a log line).
std::string printable(const std::string& text) {
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  for (const char c : text) {
    const auto b = static_cast<unsigned char>(c);
    if (b >= 0x20 && b < 0x7f && b != '\\') {
      out += c;
    } else {
      out += "\\x";
      out += kHex[b >> 4];
      out += kHex[b & 15];
    }
  }
  return out;
}

class Parser {
 public:
  explicit Parser(const std::string& text) : s_(text) {}

  bool parse(FilterExpr* out) {
    ARGENT_CHECK(s_.size() <= kMaxFilterLength, "filter: expression of ", s_.size(),
                 " characters exceeds the limit of ", kMaxFilterLength);
    skip_space();
    if (pos_ == s_.size()) return false;
    *out = parse_or();
    skip_space();
    if (pos_ < s_.size()) {
      if (s_[pos_] == ')') fail("unmatched ')'");
      fail("expected AND, OR or the end of the expression");
    }
    return true;
  }

 private:
  [[noreturn]] void fail(const std::string& what, size_t at) const {
    ARGENT_CHECK(false, "filter: ", what, " at position ", at + 1, ": \"", printable(s_), "\"");
    std::abort();
  }
  [[noreturn]] void fail(const std::string& what) const { fail(what, pos_); }

  void skip_space() {
    while (pos_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[pos_]))) ++pos_;
  }

  // Matches a keyword (case-insensitive, not followed by an identifier character) or a symbol.
  bool accept(const char* keyword, char symbol) {
    skip_space();
    if (pos_ < s_.size() && s_[pos_] == symbol) {
      ++pos_;
      return true;
    }
    size_t n = 0;
    while (keyword[n] != '\0') {
      if (pos_ + n >= s_.size() ||
          std::toupper(static_cast<unsigned char>(s_[pos_ + n])) != keyword[n])
        return false;
      ++n;
    }
    if (pos_ + n < s_.size() &&
        (std::isalnum(static_cast<unsigned char>(s_[pos_ + n])) || s_[pos_ + n] == '_'))
      return false;
    pos_ += n;
    return true;
  }

  FilterExpr parse_or() {
    FilterExpr first = parse_and();
    if (!peek_binary("OR", '|')) return first;
    FilterExpr e;
    e.kind = FilterExpr::Kind::kOr;
    e.children.push_back(std::move(first));
    while (accept("OR", '|')) e.children.push_back(parse_and());
    return e;
  }

  FilterExpr parse_and() {
    FilterExpr first = parse_unary();
    if (!peek_binary("AND", '&')) return first;
    FilterExpr e;
    e.kind = FilterExpr::Kind::kAnd;
    e.children.push_back(std::move(first));
    while (accept("AND", '&')) e.children.push_back(parse_unary());
    return e;
  }

  bool peek_binary(const char* keyword, char symbol) {
    const size_t save = pos_;
    const bool found = accept(keyword, symbol);
    pos_ = save;
    return found;
  }

  FilterExpr parse_unary() {
    if (++depth_ > kMaxFilterDepth) fail("expression nested deeper than " + std::to_string(kMaxFilterDepth));
    FilterExpr e;
    if (accept("NOT", '!')) {
      e.kind = FilterExpr::Kind::kNot;
      e.children.push_back(parse_unary());
    } else {
      e = parse_primary();
    }
    --depth_;
    return e;
  }

  FilterExpr parse_primary() {
    skip_space();
    if (pos_ >= s_.size()) fail("unexpected end of expression; expected a term like 3:100 or '('");
    if (s_[pos_] == '(') {
      const size_t open = pos_++;
      FilterExpr e = parse_or();
      skip_space();
      if (pos_ >= s_.size() || s_[pos_] != ')')
        fail("expected ')' (to close the '(' at position " + std::to_string(open + 1) + ")");
      ++pos_;
      return e;
    }
    return parse_term();
  }

  int64_t parse_integer(const char* what, int64_t lo, int64_t hi) {
    const size_t start = pos_;
    if (pos_ < s_.size() && (s_[pos_] == '-' || s_[pos_] == '+')) ++pos_;
    const size_t digits = pos_;
    while (pos_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[pos_]))) ++pos_;
    if (pos_ == digits) {
      pos_ = start;
      fail(std::string("expected ") + what + " (an integer)");
    }
    errno = 0;
    const long long v = std::strtoll(s_.c_str() + start, nullptr, 10);
    if (errno == ERANGE || v < lo || v > hi)
      fail(std::string(what) + " " + s_.substr(start, pos_ - start) + " is out of range [" +
               std::to_string(lo) + ", " + std::to_string(hi) + "]",
           start);
    return v;
  }

  FilterExpr parse_term() {
    FilterExpr e;
    e.kind = FilterExpr::Kind::kTerm;
    if (!std::isdigit(static_cast<unsigned char>(s_[pos_])) && s_[pos_] != '-' && s_[pos_] != '+')
      fail("expected a term like 3:100, '(' or NOT");
    e.feature = int32_t(parse_integer("feature id", 0, std::numeric_limits<int32_t>::max()));
    if (pos_ >= s_.size() || s_[pos_] != ':') fail("expected ':' between feature id and value");
    ++pos_;
    e.value = parse_integer("feature value", std::numeric_limits<int64_t>::min(),
                            std::numeric_limits<int64_t>::max());
    if (pos_ < s_.size() && s_[pos_] == ':') {  // optional weight, ignored
      ++pos_;
      const size_t start = pos_;
      char* end = nullptr;
      std::strtod(s_.c_str() + pos_, &end);
      if (end == s_.c_str() + start) fail("expected a number as the term's weight");
      pos_ = size_t(end - s_.c_str());
    }
    if (pos_ < s_.size() && (std::isalnum(static_cast<unsigned char>(s_[pos_])) || s_[pos_] == ':'))
      fail("unexpected character '" + printable(s_.substr(pos_, 1)) + "' after a term");
    return e;
  }

  const std::string& s_;
  size_t pos_ = 0;
  int depth_ = 0;
};

// Emits postfix ops; returns the operand-stack depth the subtree needs.
int emit(const FilterExpr& e, const BloomParams& bloom, std::vector<FilterOp>& ops) {
  auto push = [&](FilterOp op) {
    ARGENT_CHECK(ops.size() < size_t(kMaxFilterOps), "filter: compiles to more than ",
                 kMaxFilterOps, " operations (terms, NOT, AND, OR); simplify it");
    ops.push_back(op);
  };
  switch (e.kind) {
    case FilterExpr::Kind::kTerm: {
      const BloomTerm t = bloom_term(bloom, e.feature, e.value);
      push(FilterOp{FilterOpKind::kTerm, e.feature, e.value, t.word, 0, t.mask});
      return 1;
    }
    case FilterExpr::Kind::kNot: {
      const int d = emit(e.children[0], bloom, ops);
      push(FilterOp{FilterOpKind::kNot, 0, 0, 0, 0, 0});
      return d;
    }
    case FilterExpr::Kind::kAnd:
    case FilterExpr::Kind::kOr: {
      const FilterOpKind kind =
          e.kind == FilterExpr::Kind::kAnd ? FilterOpKind::kAnd : FilterOpKind::kOr;
      int depth = emit(e.children[0], bloom, ops);
      for (size_t i = 1; i < e.children.size(); ++i) {
        depth = std::max(depth, 1 + emit(e.children[i], bloom, ops));
        push(FilterOp{kind, 0, 0, 0, 0, 0});
      }
      return depth;
    }
  }
  return 0;
}

}  // namespace

bool parse_filter(const std::string& text, FilterExpr* out) { return Parser(text).parse(out); }

std::string to_string(const FilterExpr& e) {
  switch (e.kind) {
    case FilterExpr::Kind::kTerm:
      return std::to_string(e.feature) + ":" + std::to_string(e.value);
    case FilterExpr::Kind::kNot:
      return "NOT " + to_string(e.children[0]);
    case FilterExpr::Kind::kAnd:
    case FilterExpr::Kind::kOr: {
      std::string s = "(";
      for (size_t i = 0; i < e.children.size(); ++i) {
        if (i > 0) s += e.kind == FilterExpr::Kind::kAnd ? " AND " : " OR ";
        s += to_string(e.children[i]);
      }
      return s + ")";
    }
  }
  return "";
}

bool evaluate(const FilterExpr& e, const FeatureSet& features) {
  switch (e.kind) {
    case FilterExpr::Kind::kTerm:
      return features.count({e.feature, e.value}) != 0;
    case FilterExpr::Kind::kNot:
      return !evaluate(e.children[0], features);
    case FilterExpr::Kind::kAnd:
      for (const auto& c : e.children)
        if (!evaluate(c, features)) return false;
      return true;
    case FilterExpr::Kind::kOr:
      for (const auto& c : e.children)
        if (evaluate(c, features)) return true;
      return false;
  }
  return false;
}

FilterPlan compile_filter(const FilterExpr& expr, const BloomParams& bloom) {
  FilterPlan plan;
  const int depth = emit(expr, bloom, plan.ops);
  ARGENT_CHECK(depth <= kMaxFilterDepth, "filter: needs an evaluation stack of ", depth,
               " (max ", kMaxFilterDepth, "); flatten the expression");
  return plan;
}

FilterPlan compile_filter(const std::string& text, const BloomParams& bloom) {
  FilterExpr expr;
  if (!parse_filter(text, &expr)) return FilterPlan{};
  return compile_filter(expr, bloom);
}

}  // namespace argent
