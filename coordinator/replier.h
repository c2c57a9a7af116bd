// Sends replies to gateway clients from any thread. ZeroMQ sockets belong to one thread, so each
// replying thread owns a Replier: a PUSH socket into the gateway thread's inproc inbox, which
// forwards each reply through the ROUTER socket with the client's routing frames.
#pragma once

#include <zmq.hpp>

#include <chrono>
#include <string>
#include <vector>

#include "argent/v1/service.pb.h"

namespace argent {

constexpr const char* kReplyInbox = "inproc://argent-gateway-replies";

class Replier {
 public:
  explicit Replier(zmq::context_t& context);
  // Also counts the reply in the metrics (coordinator/metrics.h), with its latency from
  // `arrival` when that is set.
  void send(const std::vector<std::string>& envelope, const v1::Response& response,
            std::chrono::steady_clock::time_point arrival = {});

 private:
  zmq::socket_t socket_;
};

}  // namespace argent
