// The ZeroMQ authentication handler (ZAP, RFC 27) of the gateway when gateway.auth is on. libzmq
// asks it about every CURVE handshake on the gateway's socket through inproc://zeromq.zap.01 in
// the same context; it admits a client only when the client's public key is in the allow-list
// file, and answers with User-Id "<role>:<key>" (access_control.h), which the gateway then reads
// from each message. It runs on a thread of its own so a slow reload never delays a request.
//
// Reload: the file's modification time is checked every gateway.allow_list_check_s, and at once
// after request_allow_list_reload() (the SIGHUP handler of `argent serve` calls it). A file that
// fails to parse keeps the previous list in force and logs the error; removing a key refuses its
// next connection (connections already open stay open until they close).
#pragma once

#include <zmq.hpp>

#include <atomic>
#include <cstdint>
#include <ctime>
#include <string>
#include <thread>

#include "common/config.h"
#include "coordinator/access_control.h"
#include "coordinator/rejection_log.h"

namespace argent {

// Async-signal-safe: sets a flag the handler's thread reads.
void request_allow_list_reload();

class ZapHandler {
 public:
  // Loads the allow-list now: throws Error(kInvalidArgument) naming the file and line when it is
  // missing or malformed, so a server with a broken list does not start.
  ZapHandler(zmq::context_t& context, const GatewayConfig& config, RejectionLog& rejections);
  ~ZapHandler();
  ZapHandler(const ZapHandler&) = delete;
  ZapHandler& operator=(const ZapHandler&) = delete;

  // Binds inproc://zeromq.zap.01 (before the gateway's socket binds) and starts the thread.
  void start();
  void stop();

  int64_t refused() const { return refused_.load(); }
  int64_t reloads() const { return reloads_.load(); }

 private:
  void run(zmq::socket_t& socket);
  void answer(zmq::socket_t& socket);
  void reload_if_changed(bool forced);

  zmq::context_t& context_;
  GatewayConfig config_;
  RejectionLog& rejections_;
  AllowList allowed_;  // read and replaced on the handler's thread only (after start)
  struct timespec mtime_ {};
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> refused_{0}, reloads_{0};
  std::thread thread_;
};

}  // namespace argent
