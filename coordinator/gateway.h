// The coordinator's front door: a ZeroMQ ROUTER socket (serve.endpoint) read by one thread that
// parses each Request, validates it, answers Health and Stats itself and queues searches for
// the step loop. Anything malformed gets an error reply naming the problem (or, past twice
// serve.max_message_bytes, is dropped by ZeroMQ); nothing a client sends can stop the thread.
// The socket's limits and reply policy are in gateway_socket.h; with gateway.auth, a ZAP handler
// (zap_handler.h) admits allowed CURVE keys and each request is checked against its key's role.
#pragma once

#include <zmq.hpp>

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "argent/v1/service.pb.h"
#include "common/config.h"
#include "coordinator/access_control.h"
#include "coordinator/gateway_socket.h"
#include "coordinator/rejection_log.h"
#include "coordinator/rebalance_status.h"
#include "coordinator/request_queue.h"
#include "coordinator/request_validation.h"
#include "coordinator/server_stats.h"
#include "coordinator/update_queue.h"
#include "coordinator/zap_handler.h"
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

class Gateway {
 public:
  Gateway(zmq::context_t& context, const Config& config, const IndexMeta& meta,
          RequestQueue& queue, ServerStats& stats, GatewayInfo info);
  ~Gateway();

  // Binds serve.endpoint and starts the thread; throws Error(kUnavailable) when it cannot bind.
  void start();
  void stop();

 private:
  void run(zmq::socket_t& router, zmq::socket_t& inbox, zmq::socket_t& monitor);
  void handle(IncomingMessage& message);
  // Upsert, Delete, Admin: validated here, queued for the step loop, which logs, applies and
  // answers them.
  void handle_write(const v1::Request& request, std::vector<std::string> envelope);
  // Sends without blocking; a reply that cannot be delivered is counted in dropped_replies.
  void reply(const std::vector<std::string>& envelope, const v1::Response& response);
  // Whether the connection's role allows `request`; answers PERMISSION_DENIED when not.
  bool authorized(const v1::Request& request, const IncomingMessage& message);
  // The OVERLOADED message of a `queue` ("request", "write") that refused a request of `bytes`
  // (kFull or kOverBytes) while holding `held` bytes; it names the limit that refused it.
  std::string overload_message(const std::string& queue, PushResult why, int64_t bytes,
                               int64_t held) const;
  // Admin REBALANCE: parsed here, planned and run by the step loop (coordinator/rebalancer.h).
  void handle_rebalance(const v1::AdminRequest& request, std::vector<std::string> envelope);

  zmq::context_t& context_;
  const Config& config_;
  const IndexMeta& meta_;
  RequestQueue& queue_;
  ServerStats& stats_;
  GatewayInfo info_;
  RejectionLog rejections_;
  std::unique_ptr<ZapHandler> zap_;  // with gateway.auth
  zmq::socket_t* router_ = nullptr;  // the gateway thread's socket, while it runs
  std::atomic<bool> stop_{false};
  std::thread thread_;
  SteadyClock::time_point started_ = SteadyClock::now();
};

}  // namespace argent
