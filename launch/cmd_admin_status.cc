// argent admin status: is the server up, what runs it, and how the work is spread over ranks:
// health, versions, per-rank items / tombstones / load, and the partition map as the server
// reports it. A table for people, --json for scripts; exits 1 when the server does not answer.
#include <cstdio>
#include <memory>
#include <sstream>
#include <string>

#include "common/error.h"
#include "common/version.h"
#include "coordinator/client.h"
#include "launch/admin_status.h"
#include "launch/cmd_admin.h"

namespace argent {
namespace {

int run_status(const AdminOptions& o, double wait_s) {
  Report report;
  report.field("endpoint", o.endpoint);
  report.field("client_version", argent_version());
  Client client(o.endpoint, o.keys.load());
  v1::Response health, stats;
  if (wait_s > 0 && !client.wait_until_healthy(std::chrono::milliseconds(int64_t(wait_s * 1000)))) {
    report.field("health", "unreachable");
    std::ostringstream why;
    why << "no healthy reply within --wait-s " << wait_s << " s";
    report.field("error", why.str());
    report.print(o.json);
    return 1;
  }
  try {
    v1::Request h;
    h.mutable_health();
    health = client.call(h, o.timeout());
    v1::Request s;
    s.mutable_stats();
    stats = client.call(s, o.timeout());
  } catch (const Error& e) {
    report.field("health", "unreachable");
    report.field("error", e.what());
    report.print(o.json);
    return 1;
  }
  const v1::Status& hs = response_status(health);
  const v1::Status& ss = response_status(stats);
  if (hs.code() != v1::OK || ss.code() != v1::OK) {
    report.field("health", "error");
    report.field("error", v1::StatusCode_Name(hs.code() != v1::OK ? hs.code() : ss.code()) +
                              ": " + (hs.code() != v1::OK ? hs.message() : ss.message()));
    report.print(o.json);
    return 1;
  }
  const v1::HealthResponse& h = health.health();
  const v1::StatsResponse& st = stats.stats();
  report.field("health", "ok");
  report.field("server_version", h.version().empty() ? std::string("unknown") : h.version());
  report.field("ranks", h.ranks());
  report.field("backend", h.backend());
  report.field("dim", h.dim());
  report.field("items", h.items());
  report.field("partitions", st.index_partitions());
  report.field("uptime_s", st.uptime_s());
  report.field("qps", st.qps());
  report.field("p50_ms", st.p50_ms());
  report.field("p99_ms", st.p99_ms());
  report.field("requests", st.requests());
  report.field("queue_depth", st.queue_depth());
  report.field("rejected", nlohmann::json{{"overloaded", st.rejected_overloaded()},
                                          {"deadline", st.rejected_deadline()},
                                          {"invalid", st.rejected_invalid()}});
  report.field("upserts_per_s", st.upserts_per_s());
  report.field("deletes_per_s", st.deletes_per_s());
  report.field("tombstone_ratio", st.tombstone_ratio());
  report.field("wal_sequence", st.wal_sequence());
  report.field("snapshot_sequence", st.snapshot_sequence());
  report.field("partition_map_epoch", st.partition_map_epoch());
  report.field("rebalance", format_rebalance_progress(st.rebalance()));

  Table& shards = report.table(
      "shards", {"rank", "items", "tombstones", "partitions", "share", "steps", "step_ms"});
  Table& map = report.table("partition_map", {"rank", "partitions"});
  for (const v1::ShardStats& s : st.shards()) {
    const double share = h.items() > 0 ? double(s.items()) / double(h.items()) : 0.0;
    shards.row({s.rank(), s.items(), s.tombstones(), s.partitions_size(), share, s.steps(),
                s.step_ms()});
    map.row({s.rank(), nlohmann::json(std::vector<int32_t>(s.partitions().begin(),
                                                           s.partitions().end()))});
  }
  report.print(o.json);
  // People also get the map by rank, with partition ranges, standby ranks and the imbalance.
  if (!o.json) std::printf("\n%s", format_cluster_status(cluster_status(st)).c_str());
  return 0;
}

}  // namespace

CommandFn add_admin_status(CLI::App& admin) {
  auto o = std::make_shared<AdminOptions>();
  o->timeout_ms = 10000;
  CLI::App* c = admin.add_subcommand(
      "status", "Health, versions, per-rank items/tombstones/load and the partition map");
  o->add_to(c);
  auto wait_s = std::make_shared<double>(0.0);
  c->add_option("--wait-s", *wait_s,
                "Wait up to this long for the server to come up (scripts starting a cluster)")
      ->capture_default_str();
  return [o, wait_s] { return run_status(*o, *wait_s); };
}

}  // namespace argent
