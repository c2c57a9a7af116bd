// The HTTP side of the metrics endpoint: GET /metrics answers the registry in Prometheus' text
// format. A small server of its own (one thread, one connection at a time, which is how
// Prometheus scrapes) rather than prometheus-cpp's civetweb Exposer: civetweb fails to start
// inside a process that links LibTorch ("null context when constructing CivetServer").
#pragma once

#include <prometheus/registry.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>

namespace argent {

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
  void run();
  void answer(int client);

  std::shared_ptr<prometheus::Registry> registry_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace argent
