// A C++ client of the gateway: one DEALER socket, requests and replies paired by request_id.
// Not thread-safe; use one Client per thread (argent query --concurrency does).
#pragma once

#include <zmq.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "argent/v1/service.pb.h"
#include "coordinator/curve_keys.h"

namespace argent {

class Client {
 public:
  // `security`: CURVE keys for a gateway with gateway.auth (default: NULL security).
  explicit Client(const std::string& endpoint, const ClientSecurity& security = {});

  // Sends one request (its request_id is set if 0) and returns the id used. Throws
  // Error(kUnavailable) when the message cannot be queued within a second (no connection).
  uint64_t send(v1::Request request);
  // Sends raw bytes as one message (tests: malformed input).
  void send_raw(const std::string& bytes);
  // Next reply, or nullopt after `timeout`. Throws Error(kDataLoss) for a reply that does not
  // parse.
  std::optional<v1::Response> receive(std::chrono::milliseconds timeout);

  // send + receive the reply to that request. Throws Error(kDeadlineExceeded) after `timeout`.
  v1::Response call(v1::Request request,
                    std::chrono::milliseconds timeout = std::chrono::milliseconds(30000));
  v1::SearchResponse search(const v1::SearchRequest& request,
                            std::chrono::milliseconds timeout = std::chrono::milliseconds(30000));

  // Polls Health until the server answers OK or `timeout` passes; returns whether it did.
  bool wait_until_healthy(std::chrono::milliseconds timeout);

 private:
  zmq::context_t context_;
  zmq::socket_t socket_;
  uint64_t next_id_ = 1;
};

// The request id a Response answers (0 for an envelope error).
uint64_t response_request_id(const v1::Response& response);

}  // namespace argent
