// argent admin: operator actions on a running server. The actions live in
// launch/cmd_admin_<action>.cc and register here, one line each.
#include "launch/cmd_admin.h"

#include <map>
#include <memory>

#include "common/error.h"

namespace argent {

void AdminOptions::add_to(CLI::App* app) {
  app->add_option("--endpoint", endpoint, "Gateway endpoint")->capture_default_str();
  app->add_option("--timeout-ms", timeout_ms, "Give up after this long")
      ->capture_default_str()
      ->check(at_least(1));
  add_json_flag(app, &json);
  keys.add_to(app);
}

const v1::Status& response_status(const v1::Response& r) {
  switch (r.body_case()) {
    case v1::Response::kSearch: return r.search().status();
    case v1::Response::kMutation: return r.mutation().status();
    case v1::Response::kStats: return r.stats().status();
    case v1::Response::kHealth: return r.health().status();
    case v1::Response::kAdmin: return r.admin().status();
    default: return r.error();
  }
}

CommandFn add_admin_command(CLI::App& app) {
  CLI::App* admin = app.add_subcommand("admin", "Operator actions on a running server");
  admin->require_subcommand(1);
  auto actions = std::make_shared<std::map<std::string, CommandFn>>();
  (*actions)["status"] = add_admin_status(*admin);
  (*actions)["snapshot"] = add_admin_snapshot(*admin);
  (*actions)["stats"] = add_admin_stats(*admin);
  (*actions)["keygen"] = add_admin_keygen(*admin);
  (*actions)["rebalance"] = add_admin_rebalance(*admin);
  return [admin, actions] {
    for (const auto& [name, run] : *actions)
      if (admin->got_subcommand(name)) return run();
    ARGENT_CHECK(false, "admin: no action given (", admin->help(), ")");
    return 2;
  };
}

}  // namespace argent
