// The HTTP side of the metrics endpoint: GET /metrics answers the registry in Prometheus' text
// format. A small server of its own rather than prometheus-cpp's civetweb Exposer: civetweb
// fails to start inside a process that links LibTorch ("null context when constructing
// CivetServer"). One thread polls every open connection (at most kMaxMetricsConnections), so an
// idle or slow client never makes a scrape wait behind it: each connection has
// kMetricsRequestDeadline from its accept to send its whole request and
// kMetricsResponseDeadline to take the answer, and is closed when either passes.
#pragma once

#include <prometheus/registry.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace argent {

constexpr size_t kMaxMetricsConnections = 64;  // more wait in the listen backlog
constexpr std::chrono::milliseconds kMetricsRequestDeadline{1000};
constexpr std::chrono::milliseconds kMetricsResponseDeadline{5000};

class MetricsHttpServer {
 public:
  // Binds HOST:PORT (numeric or a host name) and starts serving `registry`; throws
  // Error(kUnavailable) naming the endpoint when it cannot bind.
  MetricsHttpServer(const std::string& host, const std::string& port,
                    std::shared_ptr<prometheus::Registry> registry);
  ~MetricsHttpServer();
  MetricsHttpServer(const MetricsHttpServer&) = delete;
  MetricsHttpServer& operator=(const MetricsHttpServer&) = delete;

  int port() const { return port_; }  // the port bound

 private:
  struct Connection;
  void run();
  // Takes every waiting client, up to kMaxMetricsConnections open; false when the process is
  // out of descriptors (the caller backs off instead of polling the listening socket again).
  bool accept_clients(std::vector<Connection>& open);
  // Reads what `c` has sent without blocking; once its request is complete, answers it.
  void read_request(Connection& c);
  // Sends what `c` is still owed without blocking; marks it done once all is sent.
  void send_response(Connection& c);
  // The HTTP response to `request` (its request line decides: /metrics or 404).
  std::string respond(const std::string& request) const;

  std::shared_ptr<prometheus::Registry> registry_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  bool out_of_descriptors_logged_ = false;  // the serving thread's only
  std::thread thread_;
};

}  // namespace argent
