#include "launch/report.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "common/error.h"

namespace argent {

std::string cell_text(const nlohmann::json& value) {
  if (value.is_string()) return value.get<std::string>();
  if (value.is_number_float()) {
    const double v = value.get<double>();
    if (!std::isfinite(v)) return std::to_string(v);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.3f", v);
    std::string s = buf;
    while (s.size() > 1 && s.back() == '0') s.pop_back();  // 1.500 -> 1.5, 2.000 -> 2.
    if (s.back() == '.') s.pop_back();
    return s;
  }
  if (value.is_array()) {
    std::string s;
    for (const nlohmann::json& v : value) s += (s.empty() ? "" : ",") + cell_text(v);
    return s.empty() ? "-" : s;
  }
  if (value.is_null()) return "-";
  return value.dump();
}

void Table::row(std::vector<nlohmann::json> cells) {
  ARGENT_CHECK(cells.size() == columns_.size(), "table row has ", cells.size(),
               " cells, the table has ", columns_.size(), " columns");
  rows_.push_back(std::move(cells));
}

std::string Table::text() const {
  std::vector<size_t> width(columns_.size());
  std::vector<std::vector<std::string>> shown;
  for (size_t c = 0; c < columns_.size(); ++c) width[c] = columns_[c].size();
  for (const auto& r : rows_) {
    std::vector<std::string> line;
    for (size_t c = 0; c < r.size(); ++c) {
      line.push_back(cell_text(r[c]));
      width[c] = std::max(width[c], line.back().size());
    }
    shown.push_back(std::move(line));
  }
  std::ostringstream out;
  auto pad = [&](const std::string& s, size_t c, bool right) {
    const std::string fill(width[c] - std::min(width[c], s.size()), ' ');
    out << (c ? "  " : "") << (right ? fill + s : s + (c + 1 < columns_.size() ? fill : ""));
  };
  for (size_t c = 0; c < columns_.size(); ++c) {
    const bool numeric = !rows_.empty() && rows_.front()[c].is_number();
    pad(columns_[c], c, numeric);
  }
  out << "\n";
  for (size_t r = 0; r < shown.size(); ++r) {
    for (size_t c = 0; c < shown[r].size(); ++c) pad(shown[r][c], c, rows_[r][c].is_number());
    out << "\n";
  }
  return out.str();
}

nlohmann::json Table::json() const {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& r : rows_) {
    nlohmann::json obj = nlohmann::json::object();
    for (size_t c = 0; c < columns_.size(); ++c) obj[columns_[c]] = r[c];
    out.push_back(std::move(obj));
  }
  return out;
}

void Report::field(const std::string& key, nlohmann::json value) {
  fields_.emplace_back(key, std::move(value));
}

Table& Report::table(const std::string& key, std::vector<std::string> columns) {
  tables_.emplace_back(key, std::make_unique<Table>(std::move(columns)));
  return *tables_.back().second;
}

std::string Report::text() const {
  size_t key_width = 0;
  for (const auto& [k, v] : fields_) key_width = std::max(key_width, k.size());
  std::ostringstream out;
  for (const auto& [k, v] : fields_)
    out << k << std::string(key_width - k.size() + 2, ' ') << cell_text(v) << "\n";
  for (const auto& [k, t] : tables_) out << "\n" << k << ":\n" << t->text();
  return out.str();
}

nlohmann::json Report::json() const {
  nlohmann::json out = nlohmann::json::object();
  for (const auto& [k, v] : fields_) out[k] = v;
  for (const auto& [k, t] : tables_) out[k] = t->json();
  return out;
}

void Report::print(bool as_json, std::FILE* out) const {
  const std::string s = as_json ? json().dump() + "\n" : text();
  std::fwrite(s.data(), 1, s.size(), out);
  std::fflush(out);
}

}  // namespace argent
