// The gateway's ROUTER socket and what bounds it (docs/reliability.md, "Gateway"):
//   - ZMQ_ROUTER_MANDATORY and non-blocking sends: a reply to a client that is gone, or that has
//     gateway.send_hwm replies it has not read, is dropped at once and counted, never queued
//     without bound and never silently lost; ZMQ_ROUTER_HANDOVER off, so a second connection
//     cannot take over another's routing id;
//   - ZMQ_MAXMSGSIZE (twice serve.max_message_bytes: frames up to that are read and answered
//     with a clear error, larger ones make ZeroMQ drop the connection), ZMQ_SNDHWM/ZMQ_RCVHWM and
//     ZMQ_HANDSHAKE_IVL from gateway.*;
//   - a receive that keeps at most gateway.max_frames frames and serve.max_message_bytes bytes
//     of one message in memory and discards the rest as it arrives;
//   - with gateway.auth, CURVE server keys and the ZAP domain;
//   - a socket monitor reporting failed handshakes.
#pragma once

#include <zmq.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "common/config.h"

namespace argent {

constexpr const char* kGatewayMonitor = "inproc://argent-gateway-monitor";
constexpr const char* kZapDomain = "argent";

// Sets every option above on `router` (before bind); throws Error(kInvalidArgument) for a bad
// server key file.
void configure_router(zmq::socket_t& router, const Config& config);

// One request as received. `envelope`: the routing frames to reply with (at most
// max_frames - 1); `payload`: the last frame. `refusal` is non-empty when the message broke a
// cap: its frames beyond the caps were discarded unread into memory, and it must be answered
// with `refusal` and not parsed.
struct IncomingMessage {
  std::vector<std::string> envelope;
  zmq::message_t payload;
  std::string user_id;  // the ZAP handler's User-Id of the connection ("" without auth)
  int64_t frames = 0, bytes = 0;
  std::string refusal;
};

// Receives the next message without blocking; false when none is waiting.
bool receive_bounded(zmq::socket_t& router, const Config& config, IncomingMessage* out);

// Sends one reply (routing frames, then `payload`) without blocking. Returns false, having sent
// nothing, when the client is gone (EHOSTUNREACH) or its queue is full (EAGAIN).
bool send_reply(zmq::socket_t& router, const std::vector<std::string>& envelope,
                const std::string& payload);
// The same for a reply forwarded frame by frame from the reply inbox.
bool send_frames(zmq::socket_t& router, std::vector<zmq::message_t>& frames);

// A failed handshake from the monitor socket: the event's name and the peer's address.
struct HandshakeFailure {
  std::string reason, address;
};
// Reads one monitor event; true and `out` set when it was a failed handshake.
bool read_handshake_failure(zmq::socket_t& monitor, HandshakeFailure* out);

}  // namespace argent
