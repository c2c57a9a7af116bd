// The coordinator's Prometheus endpoint (metrics.endpoint) on a running 3-rank cluster: scrape
// /metrics over HTTP, put load on the gateway, scrape again, and check that the counters moved
// exactly as the load did — requests by operation and status (ok, invalid_argument, malformed),
// rejections, latency observations, batch sizes, every rank's step time, items per rank, and
// writes.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <functional>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "coordinator/client.h"
#include "serving/mpi_job.h"
#include "shard/index_builder.h"
#include "shard/synthetic.h"

namespace argent {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;

constexpr int kDim = 24;
constexpr int64_t kItems = 6000;
constexpr int kRanks = 3;

// A TCP port on 127.0.0.1 that nothing listens on right now (the kernel picks it).
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd);
    return -1;
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

// GET http://127.0.0.1:port/metrics; the body, or "" when nothing answers.
std::string http_get_metrics(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(uint16_t(port));
  timeval timeout{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return "";
  }
  const std::string request = "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
  (void)!::write(fd, request.data(), request.size());
  std::string response;
  char buf[65536];
  for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) response.append(buf, size_t(n));
  ::close(fd);
  const size_t body = response.find("\r\n\r\n");
  return body == std::string::npos ? "" : response.substr(body + 4);
}

// Prometheus text format -> {"name{labels}": value}; comments skipped.
std::map<std::string, double> parse_metrics(const std::string& text) {
  std::map<std::string, double> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    const size_t space = line.rfind(' ');
    if (space == std::string::npos) continue;
    out[line.substr(0, space)] = std::stod(line.substr(space + 1));
  }
  return out;
}

double value(const std::map<std::string, double>& m, const std::string& series) {
  auto it = m.find(series);
  return it == m.end() ? 0.0 : it->second;
}

class MetricsCluster : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string((fs::temp_directory_path() /
                            ("argent-metrics-" + std::to_string(::getpid()))).string());
    fs::create_directories(*dir_);
    Config cfg;
    cfg.index.partitions = 8;
    build_index(generate_synthetic_items(kItems, kDim, 5, cfg.synthetic), cfg.index,
                *dir_ + "/index");
    port_ = free_port();
    ASSERT_GT(port_, 0);
    endpoint_ = new std::string("ipc://" + *dir_ + "/gateway.sock");
    const std::string config = *dir_ + "/serve.yaml";
    std::ofstream(config) << "index:\n  dir: " << *dir_ << "/index\nserve:\n  endpoint: "
                          << *endpoint_ << "\n  stats_interval_s: 0.2\nmetrics:\n  endpoint: "
                          << "127.0.0.1:" << port_ << "\n";
    job_ = new testing::MpiJob({ARGENT_MPIEXEC, "--oversubscribe", "--bind-to", "none", "-np",
                                std::to_string(kRanks), ARGENT_BIN, "serve", "--config", config},
                               *dir_ + "/serve.log");
    ASSERT_TRUE(job_->started());
    Client client(*endpoint_);
    ASSERT_TRUE(client.wait_until_healthy(milliseconds(60000))) << job_->log();
  }
  static void TearDownTestSuite() {
    if (job_) job_->stop(SIGTERM, std::chrono::seconds(30));
    delete job_;
    std::error_code ec;
    if (dir_) fs::remove_all(*dir_, ec);
    delete dir_;
    delete endpoint_;
  }

  // Scrapes until `ready` holds for the scrape (or 15 s pass): counters of the write path are
  // updated just after the reply leaves, so a scrape may briefly trail the client.
  static std::map<std::string, double> scrape_until(
      const std::function<bool(const std::map<std::string, double>&)>& ready) {
    std::map<std::string, double> m;
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(15);
    do {
      m = parse_metrics(http_get_metrics(port_));
      if (ready(m)) break;
      std::this_thread::sleep_for(milliseconds(50));
    } while (std::chrono::steady_clock::now() < give_up);
    return m;
  }
  static std::map<std::string, double> scrape() {
    return scrape_until([](const auto& m) { return !m.empty(); });
  }

  // Sends `n` valid searches and `bad` searches of the wrong dimension; waits for every reply.
  static void load(int n, int bad, uint64_t seed) {
    Client client(*endpoint_);
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> normal;
    for (int i = 0; i < n + bad; ++i) {
      v1::SearchRequest r;
      const int dim = i < n ? kDim : kDim + 1;
      for (int j = 0; j < dim; ++j) r.add_embedding(normal(rng));
      r.set_k(5);
      const v1::SearchResponse s = client.search(r);
      ASSERT_EQ(s.status().code(), i < n ? v1::OK : v1::INVALID_ARGUMENT) << s.status().message();
    }
  }

  static std::string* dir_;
  static std::string* endpoint_;
  static int port_;
  static testing::MpiJob* job_;
};
std::string* MetricsCluster::dir_ = nullptr;
std::string* MetricsCluster::endpoint_ = nullptr;
int MetricsCluster::port_ = 0;
testing::MpiJob* MetricsCluster::job_ = nullptr;

const std::string kSearchOk = "argent_requests_total{op=\"search\",status=\"ok\"}";
const std::string kSearchInvalid = "argent_requests_total{op=\"search\",status=\"invalid_argument\"}";

TEST_F(MetricsCluster, CountersMoveAsTheLoadDoes) {
  const auto before = scrape();
  ASSERT_FALSE(before.empty()) << "nothing answered on 127.0.0.1:" << port_ << "\n" << job_->log();
  // Two rounds of different sizes: each counter moves by exactly its round's load.
  auto previous = before;
  for (const auto& [good, bad] : {std::pair{40, 7}, std::pair{90, 3}}) {
    load(good, bad, uint64_t(good));
    const double ok0 = value(previous, kSearchOk);
    const auto after = scrape_until([&](const auto& m) { return value(m, kSearchOk) >= ok0 + good; });
    EXPECT_EQ(value(after, kSearchOk) - ok0, good);
    EXPECT_EQ(value(after, kSearchInvalid) - value(previous, kSearchInvalid), bad);
    EXPECT_EQ(value(after, "argent_rejected_total{reason=\"invalid\"}") -
                  value(previous, "argent_rejected_total{reason=\"invalid\"}"),
              bad);
    const std::string latency = "argent_request_latency_seconds_count{op=\"search\",status=\"ok\"}";
    EXPECT_EQ(value(after, latency) - value(previous, latency), good);
    // Every valid search ran in exactly one step, and every rank ran every step.
    const double batches = value(after, "argent_batch_size_count") -
                           value(previous, "argent_batch_size_count");
    EXPECT_EQ(value(after, "argent_batch_size_sum") - value(previous, "argent_batch_size_sum"),
              good);
    EXPECT_GE(batches, 1);
    for (int r = 0; r < kRanks; ++r) {
      const std::string steps = "argent_rank_step_seconds_count{rank=\"" + std::to_string(r) + "\"}";
      EXPECT_EQ(value(after, steps) - value(previous, steps), batches) << "rank " << r;
      const std::string time = "argent_rank_step_seconds_sum{rank=\"" + std::to_string(r) + "\"}";
      EXPECT_GT(value(after, time), value(previous, time)) << "rank " << r;
    }
    EXPECT_EQ(value(after, "argent_all_gather_seconds_count") -
                  value(previous, "argent_all_gather_seconds_count"),
              batches);
    previous = after;
  }
  double items = 0;
  for (int r = 0; r < kRanks; ++r)
    items += value(previous, "argent_shard_items{rank=\"" + std::to_string(r) + "\"}");
  EXPECT_EQ(items, kItems);
}

// Every metric launch/grafana-dashboard.json plots is one the server exports.
void expect_dashboard_metrics_served(const std::string& exposition) {
  std::set<std::string> served;
  std::istringstream in(exposition);
  for (std::string line; std::getline(in, line);)
    if (line.rfind("# TYPE ", 0) == 0) served.insert(line.substr(7, line.find(' ', 7) - 7));
  std::ifstream file(std::string(ARGENT_SOURCE_DIR) + "/launch/grafana-dashboard.json");
  const nlohmann::json dashboard = nlohmann::json::parse(file);
  const std::regex name("argent_[a-z_]+");
  int checked = 0;
  for (const nlohmann::json& panel : dashboard["panels"])
    for (const nlohmann::json& target : panel["targets"]) {
      const std::string expr = target["expr"];
      for (std::sregex_iterator it(expr.begin(), expr.end(), name), end; it != end; ++it) {
        std::string metric = it->str();
        for (const std::string suffix : {"_bucket", "_sum", "_count"})
          if (!served.count(metric) && metric.size() > suffix.size() &&
              metric.compare(metric.size() - suffix.size(), suffix.size(), suffix) == 0)
            metric.resize(metric.size() - suffix.size());
        EXPECT_TRUE(served.count(metric)) << panel["title"] << ": " << it->str();
        ++checked;
      }
    }
  EXPECT_GT(checked, 10);
}

TEST_F(MetricsCluster, MalformedMessagesWritesAndTheDashboardsMetrics) {
  const auto before = scrape();
  ASSERT_FALSE(before.empty()) << job_->log();
  Client client(*endpoint_);
  client.send_raw("not a protobuf message \xff\xff\xff");
  ASSERT_TRUE(client.receive(milliseconds(10000)).has_value());
  const std::string malformed = "argent_requests_total{op=\"malformed\",status=\"invalid_argument\"}";

  v1::Request upsert;
  for (int64_t id : {900001, 900002, 900003}) {
    v1::Item* item = upsert.mutable_upsert()->add_items();
    item->set_id(id);
    for (int j = 0; j < kDim; ++j) item->add_embedding(float(j + 1));
  }
  ASSERT_EQ(client.call(upsert).mutation().status().code(), v1::OK);
  v1::Request del;
  del.mutable_delete_()->add_ids(900002);
  ASSERT_EQ(client.call(del).mutation().status().code(), v1::OK);

  const std::string upserted = "argent_upserted_items_total";
  const std::string deleted = "argent_deleted_items_total";
  const auto after = scrape_until([&](const auto& m) {
    return value(m, deleted) >= value(before, deleted) + 1 &&
           value(m, upserted) >= value(before, upserted) + 3;
  });
  EXPECT_EQ(value(after, malformed) - value(before, malformed), 1);
  EXPECT_EQ(value(after, upserted) - value(before, upserted), 3);
  EXPECT_EQ(value(after, deleted) - value(before, deleted), 1);
  const std::string mutations_ok = "argent_requests_total{op=\"mutation\",status=\"ok\"}";
  EXPECT_EQ(value(after, mutations_ok) - value(before, mutations_ok), 2);
  EXPECT_EQ(value(after, "argent_write_visible_seconds_count") -
                value(before, "argent_write_visible_seconds_count"),
            2);
  EXPECT_GE(value(after, "argent_wal_sequence"), 2);
  double tombstones = 0;
  for (int r = 0; r < kRanks; ++r)
    tombstones += value(after, "argent_shard_tombstones{rank=\"" + std::to_string(r) + "\"}");
  EXPECT_EQ(tombstones, 1);  // the deleted row, until compaction
  // Every panel has data once a search step has run (per-rank step times) and a stats interval
  // has passed (queue depths): the suite's order does not promise either before this point.
  load(2, 0, 77);
  scrape_until([](const auto& m) {
    for (const auto& [name, v] : m)
      if (name.rfind("argent_queue_depth", 0) == 0) return true;
    return false;
  });
  expect_dashboard_metrics_served(http_get_metrics(port_));
}

}  // namespace
}  // namespace argent
