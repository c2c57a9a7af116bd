// The coordinator's front door: a ZeroMQ ROUTER socket (serve.endpoint) read by one thread that
// parses each Request, validates it, answers Health and Stats itself and queues searches for
// the step loop. Anything malformed gets an error reply naming the problem (or, past twice
// serve.max_message_bytes, is dropped by ZeroMQ); nothing a client sends can stop the thread.
#pragma once

#include <zmq.hpp>

#include <atomic>
#include <string>
#include <thread>

#include "argent/v1/service.pb.h"
#include "common/config.h"
#include "coordinator/rebalance_status.h"
#include "coordinator/request_queue.h"
#include "coordinator/server_stats.h"
#include "coordinator/update_queue.h"
#include "shard/index_meta.h"

namespace argent {

struct GatewayInfo {
  int ranks = 1;
  std::string backend;
  // The write path (not owned; both outlive the gateway). Null: Upsert, Delete and Admin are
  // answered UNIMPLEMENTED.
  MutationQueue* mutations = nullptr;
  UpdateStats* update_stats = nullptr;
  // Rebalancing (not owned; outlive the gateway). Null: REBALANCE is answered UNIMPLEMENTED.
  RebalanceQueue* rebalances = nullptr;
  const RebalanceStatus* rebalance_status = nullptr;
};

// Checks a SearchRequest against the index and the config and fills `out`; returns an empty
// string when valid, else the INVALID_ARGUMENT message.
std::string validate_search(const v1::SearchRequest& request, const IndexMeta& meta,
                            const Config& config, PendingSearch* out);

class Gateway {
 public:
  Gateway(zmq::context_t& context, const Config& config, const IndexMeta& meta,
          RequestQueue& queue, ServerStats& stats, GatewayInfo info);
  ~Gateway();

  // Binds serve.endpoint and starts the thread; throws Error(kUnavailable) when it cannot bind.
  void start();
  void stop();

 private:
  void run(zmq::socket_t& router, zmq::socket_t& inbox);
  void handle(std::vector<zmq::message_t>& frames, zmq::socket_t& router);
  // Upsert, Delete, Admin: validated here, queued for the step loop, which logs, applies and
  // answers them.
  void handle_write(const v1::Request& request, std::vector<std::string> envelope,
                    zmq::socket_t& router);
  // Admin REBALANCE: parsed here, planned and run by the step loop (coordinator/rebalancer.h).
  void handle_rebalance(const v1::AdminRequest& request, std::vector<std::string> envelope,
                        zmq::socket_t& router);

  zmq::context_t& context_;
  const Config& config_;
  const IndexMeta& meta_;
  RequestQueue& queue_;
  ServerStats& stats_;
  GatewayInfo info_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace argent
