// Output of the operator commands (argent admin ...): one Report is printed either for people
// (aligned "key  value" lines, then tables with a header) or for scripts (--json: one JSON
// object, fields as keys and each table an array of objects keyed by column). Commands fill a
// Report and call print(); nothing else decides the format, so every admin subcommand offers
// the same two.
//
//   Report r;
//   r.field("ranks", 3);
//   Table& t = r.table("shards", {"rank", "items"});
//   t.row({0, 1200});
//   r.print(json);
#pragma once

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace argent {

class Table {
 public:
  explicit Table(std::vector<std::string> columns) : columns_(std::move(columns)) {}
  // One row, a value per column (numbers are right-aligned in text, kept numbers in JSON).
  // Throws Error(kInvalidArgument) when the count differs from the columns'.
  void row(std::vector<nlohmann::json> cells);
  // Aligned text: a header line, then a line per row.
  std::string text() const;
  nlohmann::json json() const;  // [{column: value, ...}, ...]
  size_t rows() const { return rows_.size(); }

 private:
  std::vector<std::string> columns_;
  std::vector<std::vector<nlohmann::json>> rows_;
};

class Report {
 public:
  void field(const std::string& key, nlohmann::json value);
  // A table, kept in the order added; the reference stays valid while the Report lives.
  Table& table(const std::string& key, std::vector<std::string> columns);
  std::string text() const;
  nlohmann::json json() const;
  // Prints text() or json() (one line) to `out`.
  void print(bool as_json, std::FILE* out = stdout) const;

 private:
  std::vector<std::pair<std::string, nlohmann::json>> fields_;
  std::vector<std::pair<std::string, std::unique_ptr<Table>>> tables_;
};

// A value as a table cell or field would show it to a person: strings bare, floats with at most
// three decimals, arrays comma-separated.
std::string cell_text(const nlohmann::json& value);

// --json, shared by the commands that print a Report.
inline void add_json_flag(CLI::App* app, bool* json) {
  app->add_flag("--json", *json, "Print one JSON object instead of a table");
}

}  // namespace argent
