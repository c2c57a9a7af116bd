// The subcommands of the `argent` program. Each registers its options on a CLI11 subcommand and
// returns the function that runs it (exit status 0 on success; errors are thrown as
// argent::Error and printed as one line by main).
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <string>

#include "common/config.h"

namespace argent {

using CommandFn = std::function<int()>;

// --config FILE, shared by the subcommands that read one: configs/demo.yaml's values are the
// built-in defaults, so omitting it is the same as passing it.
struct ConfigOption {
  std::string path;
  Config load() const { return path.empty() ? Config{} : load_config(path); }
  void add_to(CLI::App* app) {
    app->add_option("--config", path, "YAML config (default: built-in, = configs/demo.yaml)")
        ->check(CLI::ExistingFile);
  }
};

// An option check: an integer of at least `min`. (CLI11's NonNegativeNumber/PositiveNumber name
// the range as 0 to 1.8e308 written out in full.)
inline CLI::Validator at_least(long long min) {
  return CLI::Validator(
      [min](std::string& text) {
        size_t used = 0;
        try {
          if (std::stoll(text, &used) >= min && used == text.size()) return std::string();
        } catch (const std::exception&) {
        }
        return "'" + text + "' is not an integer >= " + std::to_string(min);
      },
      "INT>=" + std::to_string(min));
}

CommandFn add_build_index_command(CLI::App& app);
CommandFn add_search_command(CLI::App& app);
CommandFn add_bench_command(CLI::App& app);
CommandFn add_bench_rerank_command(CLI::App& app);
CommandFn add_synth_command(CLI::App& app);
CommandFn add_config_doc_command(CLI::App& app);
CommandFn add_serve_command(CLI::App& app);
CommandFn add_query_command(CLI::App& app);
CommandFn add_upsert_command(CLI::App& app);
CommandFn add_delete_command(CLI::App& app);
CommandFn add_admin_command(CLI::App& app);
CommandFn add_supervise_command(CLI::App& app);
// `argent admin keygen --out NAME` (launch/cmd_keygen.cc).
int run_keygen(const std::string& out_prefix);
CommandFn add_export_command(CLI::App& app);

}  // namespace argent
