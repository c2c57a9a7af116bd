// The harness of the cluster fault tests (tests/fault/cluster_*): a 3-rank CPU cluster under
// `argent supervise`, with short deadlines, its ranks' process ids, a search load that times
// every reply, and the process-table checks.
#pragma once

#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "coordinator/client.h"
#include "serving/mpi_job.h"

namespace argent::fault {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// The deadlines every fault test runs with (serve.step_timeout_ms and friends): short, so the
// suite stays fast, and long enough that a healthy step on a loaded 2-core machine meets them.
constexpr int64_t kStepTimeoutMs = 1500;
constexpr int64_t kHeartbeatMs = 250;
constexpr int64_t kAbortGraceMs = 400;
// The bound: every request is answered (or the client gives up) within the deadline
// plus one second.
constexpr milliseconds kReplyBound(kStepTimeoutMs + 1000);
// After a failure, every process of the failed run is gone within this: the watchdog's grace,
// mpirun's 1 s from SIGTERM to SIGKILL, and slack for a loaded machine.
constexpr milliseconds kProcessesGoneWithin(kAbortGraceMs + 1000 + 2000);

inline std::string serve_yaml(const std::string& index_dir, const std::string& endpoint) {
  std::ostringstream y;
  y << "index:\n  dir: " << index_dir << "\n  list_slack: 0.05\n"
    << "serve:\n  endpoint: " << endpoint << "\n  max_wait_us: 500\n"
    << "  step_timeout_ms: " << kStepTimeoutMs << "\n  heartbeat_ms: " << kHeartbeatMs
    << "\n  abort_grace_ms: " << kAbortGraceMs << "\n"
    << "search:\n  threads: 1\n";  // 3 ranks share the CI machine's cores
  return y.str();
}

inline std::vector<std::string> serve_argv(const std::string& config) {
  return {ARGENT_MPIEXEC, "--oversubscribe", "--bind-to", "none", "-np", "3", ARGENT_BIN,
          "serve", "--config", config, "--serve-log-level", "info"};
}

// `argent supervise` around the serving job.
inline std::vector<std::string> supervise_argv(const std::string& endpoint,
                                               const std::string& config) {
  std::vector<std::string> argv = {ARGENT_BIN, "supervise", "--endpoint", endpoint,
                                   "--backoff-ms", "200", "--max-backoff-ms", "2000", "--"};
  for (const std::string& a : serve_argv(config)) argv.push_back(a);
  return argv;
}

// The value of `name` in the environment of process `pid` ("" when absent).
inline std::string environ_of(pid_t pid, const std::string& name) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/environ", std::ios::binary);
  std::string entry;
  while (std::getline(in, entry, '\0'))
    if (entry.rfind(name + "=", 0) == 0) return entry.substr(name.size() + 1);
  return "";
}

// The serving ranks below `root` (mpirun's children): rank -> pid.
inline std::map<int, pid_t> rank_pids(pid_t root) {
  std::map<int, pid_t> out;
  for (pid_t p : testing::MpiJob::descendants(root)) {
    const std::string rank = environ_of(p, "OMPI_COMM_WORLD_RANK");
    if (!rank.empty()) out[std::atoi(rank.c_str())] = p;
  }
  return out;
}

// Waits until all 3 ranks below `root` are up; empty on timeout.
inline std::map<int, pid_t> wait_for_ranks(pid_t root, milliseconds timeout) {
  const auto give_up = Clock::now() + timeout;
  while (Clock::now() < give_up) {
    std::map<int, pid_t> ranks = rank_pids(root);
    if (ranks.size() == 3) return ranks;
    std::this_thread::sleep_for(milliseconds(20));
  }
  return {};
}

inline bool process_exists(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  return stat.good();
}

// Waits until none of `pids` exists; returns those still there at `timeout`.
inline std::vector<pid_t> wait_gone(const std::vector<pid_t>& pids, milliseconds timeout) {
  const auto give_up = Clock::now() + timeout;
  for (;;) {
    std::vector<pid_t> left;
    for (pid_t p : pids)
      if (process_exists(p)) left.push_back(p);
    if (left.empty() || Clock::now() >= give_up) return left;
    std::this_thread::sleep_for(milliseconds(20));
  }
}

// One reply of a load, timed from its request's send.
struct TimedReply {
  uint64_t request_id = 0;
  size_t query = 0;                   // index into the load's queries
  Clock::time_point sent, received;   // received == sent: no reply within kReplyBound
  std::optional<v1::Response> reply;
};

// Sends searches from `requests` round-robin, `window` in flight, until `stop()` says so or a
// reply is not OK (the cluster failed: no more is sent); then collects the replies still owed,
// each waited for at most kReplyBound from its send. Every request's outcome is returned.
template <typename Stop>
std::vector<TimedReply> run_search_load(Client& client,
                                        const std::vector<v1::SearchRequest>& requests,
                                        int window, Stop stop) {
  std::vector<TimedReply> out;
  std::map<uint64_t, size_t> pending;  // request id -> index in out
  size_t next = 0;
  bool sending = true;
  auto send_one = [&] {
    v1::Request r;
    *r.mutable_search() = requests[next % requests.size()];
    TimedReply t;
    t.query = next % requests.size();
    t.sent = Clock::now();
    t.request_id = client.send(r);
    pending[t.request_id] = out.size();
    out.push_back(t);
    ++next;
  };
  while (sending || !pending.empty()) {
    while (sending && pending.size() < size_t(window)) send_one();
    // The oldest request owed decides how long to wait.
    Clock::time_point oldest = Clock::time_point::max();
    for (const auto& [id, i] : pending) oldest = std::min(oldest, out[i].sent);
    const auto wait = std::chrono::duration_cast<milliseconds>(oldest + kReplyBound - Clock::now());
    std::optional<v1::Response> reply =
        client.receive(std::max(milliseconds(1), wait));
    if (!reply) {
      // The client's own deadline: whatever is owed past the bound is given up on.
      for (auto it = pending.begin(); it != pending.end();) {
        if (Clock::now() >= out[it->second].sent + kReplyBound) {
          out[it->second].received = out[it->second].sent;
          it = pending.erase(it);
          sending = false;
        } else {
          ++it;
        }
      }
      continue;
    }
    const uint64_t id = response_request_id(*reply);
    const auto it = pending.find(id);
    if (it == pending.end()) continue;  // a late reply to a request already given up on
    out[it->second].received = Clock::now();
    out[it->second].reply = std::move(reply);
    const bool ok = out[it->second].reply->has_search() &&
                    out[it->second].reply->search().status().code() == v1::OK;
    pending.erase(it);
    if (!ok || stop()) sending = false;
  }
  return out;
}

}  // namespace argent::fault
