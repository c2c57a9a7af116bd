// argent: the one command-line program (git-style subcommands).
#include <CLI/CLI.hpp>

#include <cstdio>
#include <map>

#include "common/error.h"
#include "common/log.h"
#include "common/version.h"
#include "launch/commands.h"

int main(int argc, char** argv) {
  CLI::App app{"Argent: a sharded int8 retrieval engine with Bloom eligibility and reranking"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("argent ") + argent::argent_version());
  std::string log_level = "warn";
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error")->capture_default_str();
  std::string log_format = "text";
  app.add_option("--log-format", log_format, "text, or json (one JSON object a line)")
      ->capture_default_str();

  std::map<std::string, argent::CommandFn> commands;
  commands["build-index"] = argent::add_build_index_command(app);
  commands["search"] = argent::add_search_command(app);
  commands["bench"] = argent::add_bench_command(app);
  commands["bench-rerank"] = argent::add_bench_rerank_command(app);
  commands["synth"] = argent::add_synth_command(app);
  commands["config-doc"] = argent::add_config_doc_command(app);
  commands["serve"] = argent::add_serve_command(app);
  commands["query"] = argent::add_query_command(app);
  commands["upsert"] = argent::add_upsert_command(app);
  commands["delete"] = argent::add_delete_command(app);
  commands["admin"] = argent::add_admin_command(app);
  commands["supervise"] = argent::add_supervise_command(app);
  commands["export"] = argent::add_export_command(app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version arrive as "errors" with exit code 0: CLI11 prints them. Real usage
    // errors get the same one-line "argent: error:" form as every other error.
    if (e.get_exit_code() == 0) return app.exit(e);
    std::fprintf(stderr, "argent: error: %s (see --help)\n", e.what());
    return e.get_exit_code();
  }
  try {
    argent::init_logging(log_level, -1, log_format);
    for (const auto& [name, run] : commands)
      if (app.got_subcommand(name)) return run();
  } catch (const argent::Error& e) {
    std::fprintf(stderr, "argent: error: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "argent: error: %s\n", e.what());
    return 2;
  }
  return 1;
}
