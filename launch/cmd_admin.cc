// argent admin: operator actions on a running server.
//   snapshot  write a consistent snapshot of every partition and truncate the write-ahead log
//   stats     print the server's Stats (search latency, update rates, freshness) as JSON
//   status    print the partition map, per-rank load and the rebalance under way
//   rebalance even | drain RANK | activate RANK | explicit P:RANK...  move partitions while
//             serving (launch/admin_status.h); --wait follows it to the end
#include <google/protobuf/util/json_util.h>

#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/error.h"
#include "coordinator/client.h"
#include "launch/admin_status.h"
#include "launch/commands.h"

namespace argent {
namespace {

struct AdminArgs {
  std::string action, endpoint = "tcp://127.0.0.1:5555";
  std::vector<std::string> args;  // rebalance: the plan and its arguments
  bool wait = false;
  int64_t timeout_ms = 600000;
};

std::string to_json(const google::protobuf::Message& m) {
  std::string out;
  google::protobuf::util::JsonPrintOptions options;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(m, &out, options);
  return out;
}

v1::StatsResponse fetch_stats(Client& client, const AdminArgs& a) {
  v1::Request request;
  request.mutable_stats();
  const v1::Response r = client.call(request, std::chrono::milliseconds(a.timeout_ms));
  const v1::Status& status = r.has_stats() ? r.stats().status() : r.error();
  ARGENT_CHECK(status.code() == v1::OK, "admin ", a.action, ": stats: ",
               v1::StatusCode_Name(status.code()), ": ", status.message());
  return r.stats();
}

int run_rebalance(Client& client, const AdminArgs& a) {
  const v1::Response r =
      client.call(rebalance_request(a.args), std::chrono::milliseconds(a.timeout_ms));
  const v1::Status& status = r.has_admin() ? r.admin().status() : r.error();
  ARGENT_CHECK(status.code() == v1::OK, "admin rebalance: ", v1::StatusCode_Name(status.code()),
               ": ", status.message());
  std::printf("rebalance %s from map epoch %llu: %d moves\n", a.args[0].c_str(),
              (unsigned long long)r.admin().partition_map_epoch(), r.admin().planned_size());
  for (const v1::PartitionMoveSpec& m : r.admin().planned())
    std::printf("  partition %d: rank %d -> rank %d\n", m.partition(), m.from_rank(), m.to_rank());
  if (!a.wait) return 0;
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::milliseconds(a.timeout_ms);
  std::string last;
  for (;;) {
    const v1::RebalanceProgress p = fetch_stats(client, a).rebalance();
    const std::string line = format_rebalance_progress(p);
    if (p.state() != "running") {
      std::printf("%s\n", line.c_str());
      return p.state() == "done" ? 0 : 1;
    }
    if (line != last) std::fprintf(stderr, "%s\n", line.c_str());
    last = line;
    ARGENT_CHECK(std::chrono::steady_clock::now() < give_up, "admin rebalance: still running after ",
                 a.timeout_ms, " ms: ", line);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

int run_admin(const AdminArgs& a) {
  Client client(a.endpoint);
  if (a.action == "rebalance") return run_rebalance(client, a);
  if (a.action == "status") {
    std::printf("%s", format_cluster_status(cluster_status(fetch_stats(client, a))).c_str());
    return 0;
  }
  v1::Request request;
  if (a.action == "snapshot") {
    request.mutable_admin()->set_action(v1::AdminRequest::SNAPSHOT);
  } else {
    request.mutable_stats();
  }
  const v1::Response r = client.call(request, std::chrono::milliseconds(a.timeout_ms));
  const v1::Status& status = r.has_admin() ? r.admin().status()
                             : r.has_stats() ? r.stats().status()
                                             : r.error();
  ARGENT_CHECK(status.code() == v1::OK, "admin ", a.action, ": ",
               v1::StatusCode_Name(status.code()), ": ", status.message());
  std::printf("%s\n", r.has_admin() ? to_json(r.admin()).c_str() : to_json(r.stats()).c_str());
  return 0;
}

}  // namespace

CommandFn add_admin_command(CLI::App& app) {
  auto a = std::make_shared<AdminArgs>();
  CLI::App* c = app.add_subcommand("admin", "Operator actions on a running server");
  c->add_option("action", a->action,
                "snapshot: write a snapshot and truncate the log; stats: print Stats as JSON; "
                "status: the partition map and per-rank load; rebalance: move partitions")
      ->required()
      ->check(CLI::IsMember({"snapshot", "stats", "status", "rebalance"}));
  c->add_option("args", a->args,
                "rebalance: even | drain RANK | activate RANK | explicit PARTITION:RANK ...");
  c->add_flag("--wait", a->wait, "rebalance: follow it until it has finished");
  c->add_option("--endpoint", a->endpoint, "Gateway endpoint")->capture_default_str();
  c->add_option("--timeout-ms", a->timeout_ms, "Give up after this long")->capture_default_str();
  return [a] { return run_admin(*a); };
}

}  // namespace argent
