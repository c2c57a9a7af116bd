// argent admin rebalance even | drain RANK | activate RANK | explicit P:RANK... [--wait]: moves
// partitions between ranks while the cluster serves (docs/architecture.md, "Rebalancing").
// Prints the planned moves; --wait follows the rebalance to its end (exit 1 if it failed).
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/error.h"
#include "coordinator/client.h"
#include "launch/admin_status.h"
#include "launch/cmd_admin.h"

namespace argent {
namespace {

struct RebalanceArgs {
  AdminOptions options;
  std::vector<std::string> plan;  // the plan and its arguments
  bool wait = false;
};

v1::RebalanceProgress fetch_progress(Client& client, const AdminOptions& o) {
  v1::Request request;
  request.mutable_stats();
  const v1::Response r = client.call(request, o.timeout());
  const v1::Status& status = response_status(r);
  ARGENT_CHECK(status.code() == v1::OK, "admin rebalance: stats: ",
               v1::StatusCode_Name(status.code()), ": ", status.message());
  return r.stats().rebalance();
}

int run_rebalance(const RebalanceArgs& a) {
  const AdminOptions& o = a.options;
  Client client(o.endpoint, o.keys.load());
  const v1::Response r = client.call(rebalance_request(a.plan), o.timeout());
  const v1::Status& status = response_status(r);
  ARGENT_CHECK(status.code() == v1::OK, "admin rebalance: ", v1::StatusCode_Name(status.code()),
               ": ", status.message());
  Report report;
  report.field("plan", a.plan[0]);
  report.field("partition_map_epoch", r.admin().partition_map_epoch());
  Table& moves = report.table("planned", {"partition", "from_rank", "to_rank"});
  for (const v1::PartitionMoveSpec& m : r.admin().planned())
    moves.row({m.partition(), m.from_rank(), m.to_rank()});
  report.print(o.json);
  if (!a.wait) return 0;
  const auto give_up = std::chrono::steady_clock::now() + o.timeout();
  std::string last;
  for (;;) {
    const v1::RebalanceProgress p = fetch_progress(client, o);
    const std::string line = format_rebalance_progress(p);
    if (p.state() != "running") {
      std::printf("%s\n", line.c_str());
      return p.state() == "done" ? 0 : 1;
    }
    if (line != last) std::fprintf(stderr, "%s\n", line.c_str());
    last = line;
    ARGENT_CHECK(std::chrono::steady_clock::now() < give_up, "admin rebalance: still running after ",
                 o.timeout_ms, " ms: ", line);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

}  // namespace

CommandFn add_admin_rebalance(CLI::App& admin) {
  auto a = std::make_shared<RebalanceArgs>();
  CLI::App* c = admin.add_subcommand(
      "rebalance", "Move partitions while serving: even | drain RANK | activate RANK | explicit P:RANK...");
  a->options.add_to(c);
  c->add_option("plan", a->plan, "The plan and its arguments")->required();
  c->add_flag("--wait", a->wait, "Follow the rebalance until it ends (exit 1 if it failed)");
  return [a] { return run_rebalance(*a); };
}

}  // namespace argent
