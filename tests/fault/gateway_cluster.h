// A 3-rank CPU cluster on tcp://127.0.0.1:<free port> for the gateway fault tests, with its own
// small index, the single-process reference search of that index, and the gateway process's
// resident memory (found through the listening socket in /proc).
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "common/error.h"
#include "coordinator/client.h"
#include "serving/mpi_job.h"
#include "shard/index_builder.h"
#include "shard/local_engine.h"
#include "shard/synthetic.h"

namespace argent::testing {

constexpr int kGatewayDim = 24;
constexpr int64_t kGatewayItems = 12000;

inline std::string make_gateway_temp_dir(const std::string& name) {
  const std::filesystem::path p =
      std::filesystem::temp_directory_path() /
      (name + "-" + std::to_string(::getpid()) + "-" + std::to_string(std::random_device{}()));
  std::filesystem::create_directories(p);
  return p.string();
}

// A TCP port nobody listens on now (bound to port 0 and released).
inline int free_tcp_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    ::close(fd);
    return -1;
  }
  ::close(fd);
  return ntohs(a.sin_port);
}

// The pid of the process listening on 127.0.0.1:`port` (the gateway: rank 0), or -1.
inline pid_t listener_pid(int port) {
  std::ifstream tcp("/proc/net/tcp");
  std::string line, inode;
  std::getline(tcp, line);  // header
  char wanted[16];
  std::snprintf(wanted, sizeof wanted, ":%04X", port);
  while (std::getline(tcp, line)) {
    std::istringstream f(line);
    std::string sl, local, remote, state, queues, timer, retr, uid, timeout, node;
    f >> sl >> local >> remote >> state >> queues >> timer >> retr >> uid >> timeout >> node;
    if (state == "0A" && local.size() > 5 && local.substr(local.size() - 5) == wanted) inode = node;
  }
  if (inode.empty()) return -1;
  const std::string target = "socket:[" + inode + "]";
  for (const auto& proc : std::filesystem::directory_iterator("/proc")) {
    const std::string name = proc.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::error_code ec;
    for (const auto& fd : std::filesystem::directory_iterator(proc.path() / "fd", ec)) {
      std::error_code link_ec;
      if (std::filesystem::read_symlink(fd.path(), link_ec).string() == target)
        return pid_t(std::stol(name));
    }
  }
  return -1;
}

// VmRSS of `pid` in bytes (0 when gone).
inline int64_t resident_bytes(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string key;
  int64_t kib = 0;
  while (status >> key) {
    if (key == "VmRSS:") {
      status >> kib;
      return kib * 1024;
    }
    std::getline(status, key);
  }
  return 0;
}

struct GatewayCluster {
  std::string dir, index, config_path, endpoint;
  int port = 0;
  Config config;
  std::unique_ptr<MpiJob> job;

  // Builds an index of kGatewayItems synthetic items under a fresh directory and starts
  // `mpirun -np 3 argent serve` on it with `extra_yaml` appended to the config.
  static std::unique_ptr<GatewayCluster> start(const std::string& name,
                                               const std::string& extra_yaml) {
    auto c = std::make_unique<GatewayCluster>();
    c->dir = make_gateway_temp_dir(name);
    c->index = c->dir + "/index";
    Config build;
    build.index.partitions = 12;
    build_index(generate_synthetic_items(kGatewayItems, kGatewayDim, 23, build.synthetic),
                build.index, c->index);
    c->port = free_tcp_port();
    c->endpoint = "tcp://127.0.0.1:" + std::to_string(c->port);
    c->config_path = c->dir + "/serve.yaml";
    std::ofstream(c->config_path) << "index:\n  dir: " << c->index << "\nserve:\n  endpoint: "
                                  << c->endpoint << "\n  stats_interval_s: 0.5\n"
                                  << extra_yaml;
    c->config = load_config(c->config_path);
    c->job = std::make_unique<MpiJob>(
        std::vector<std::string>{ARGENT_MPIEXEC, "--oversubscribe", "--bind-to", "none", "-np",
                                 "3", ARGENT_BIN, "serve", "--config", c->config_path},
        c->dir + "/serve.log");
    return c;
  }

  ~GatewayCluster() {
    if (job) job->stop(SIGTERM, std::chrono::seconds(30));
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
};

inline std::vector<float> gateway_queries(int64_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal;
  std::vector<float> x(size_t(n * kGatewayDim));
  for (float& v : x) v = normal(rng);
  return x;
}

inline v1::SearchRequest gateway_search(const float* q, int64_t k, const std::string& filter) {
  v1::SearchRequest r;
  r.mutable_embedding()->Add(q, q + kGatewayDim);
  r.set_k(int32_t(k));
  r.set_filter(filter);
  return r;
}

// Runs `n` queries through `client` one at a time and counts the answers that differ from
// `expected` (ids and scores, in order) or fail; returns the number of wrong answers.
inline int64_t wrong_answers(Client& client, const std::vector<float>& x, int64_t n, int64_t k,
                             const std::string& filter, const SearchResults& expected) {
  int64_t wrong = 0;
  for (int64_t q = 0; q < n; ++q) {
    v1::SearchResponse got;
    try {
      got = client.search(gateway_search(x.data() + q * kGatewayDim, k, filter),
                           std::chrono::milliseconds(20000));
    } catch (const ::argent::Error&) {
      ++wrong;
      continue;
    }
    if (got.status().code() != v1::OK) {
      ++wrong;
      continue;
    }
    int64_t found = 0;
    while (found < k && expected.ids[size_t(q * k + found)] >= 0) ++found;
    bool same = got.ids_size() == found;
    for (int64_t i = 0; same && i < found; ++i)
      same = got.ids(int(i)) == expected.ids[size_t(q * k + i)] &&
             got.scores(int(i)) == expected.scores[size_t(q * k + i)];
    if (!same) ++wrong;
  }
  return wrong;
}

}  // namespace argent::testing
