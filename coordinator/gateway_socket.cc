#include "coordinator/gateway_socket.h"

#include <cstring>

#include "common/error.h"
#include "coordinator/curve_keys.h"

namespace argent {

void configure_router(zmq::socket_t& router, const Config& config) {
  const GatewayConfig& g = config.gateway;
  router.set(zmq::sockopt::router_mandatory, 1);
  router.set(zmq::sockopt::router_handover, 0);
  router.set(zmq::sockopt::maxmsgsize, int64_t(2 * config.serve.max_message_bytes));
  router.set(zmq::sockopt::sndhwm, int(g.send_hwm));
  router.set(zmq::sockopt::rcvhwm, int(g.receive_hwm));
  router.set(zmq::sockopt::handshake_ivl, int(g.handshake_ms));
  router.set(zmq::sockopt::sndtimeo, 0);
  router.set(zmq::sockopt::linger, 1000);  // flush last replies on shutdown
  if (g.auth) {
    const CurveKeyPair server = read_curve_key_pair(g.server_key);
    router.set(zmq::sockopt::zap_domain, kZapDomain);
    router.set(zmq::sockopt::curve_server, 1);
    router.set(zmq::sockopt::curve_secretkey, server.secret_key);
    router.set(zmq::sockopt::curve_publickey, server.public_key);
  }
}

bool receive_bounded(zmq::socket_t& router, const Config& config, IncomingMessage* out) {
  *out = IncomingMessage{};
  zmq::message_t frame;
  if (!router.recv(frame, zmq::recv_flags::dontwait)) return false;
  const int64_t max_frames = config.gateway.max_frames;
  const int64_t max_bytes = config.serve.max_message_bytes;
  std::vector<zmq::message_t> kept;
  for (;;) {
    ++out->frames;
    if (out->frames > 1) out->bytes += int64_t(frame.size());  // the routing id is ours
    const bool more = frame.more();
    if (out->frames <= max_frames && out->bytes <= max_bytes) kept.push_back(std::move(frame));
    if (!more) break;
    // The rest of a multipart message has arrived with its first frame: this does not block.
    frame = zmq::message_t();
    (void)router.recv(frame, zmq::recv_flags::none);
  }
  if (out->frames < 2) {
    out->refusal = "message without a routing envelope";
    return true;
  }
  const char* user_id = zmq_msg_gets(kept.back().handle(), "User-Id");
  if (user_id != nullptr) out->user_id = user_id;
  if (out->frames > max_frames) {
    out->refusal = "request of " + std::to_string(out->frames) +
                   " frames, the routing frame included; gateway.max_frames = " +
                   std::to_string(max_frames);
  } else if (out->bytes > max_bytes) {
    out->refusal = "request of " + std::to_string(out->bytes) +
                   " bytes exceeds serve.max_message_bytes = " + std::to_string(max_bytes);
  }
  if (!out->refusal.empty()) {
    // Reply to the routing id only (and a REQ client's empty delimiter, when it sent one).
    out->envelope.push_back(kept[0].to_string());
    if (kept.size() > 2 && kept[1].size() == 0) out->envelope.push_back("");
    return true;
  }
  for (size_t i = 0; i + 1 < kept.size(); ++i) out->envelope.push_back(kept[i].to_string());
  out->payload = std::move(kept.back());
  return true;
}

namespace {

// The first frame decides: with ZMQ_ROUTER_MANDATORY, libzmq refuses it (EHOSTUNREACH for an
// unknown peer, EAGAIN for a full pipe) and then nothing of the message is queued; once it is
// accepted the remaining frames are too.
bool send_first(zmq::socket_t& router, zmq::const_buffer frame, bool more) {
  const int flags = ZMQ_DONTWAIT | (more ? ZMQ_SNDMORE : 0);
  if (zmq_send(router.handle(), frame.data(), frame.size(), flags) >= 0) return true;
  const int error = zmq_errno();
  if (error == EHOSTUNREACH || error == EAGAIN) return false;
  throw zmq::error_t();
}

}  // namespace

bool send_reply(zmq::socket_t& router, const std::vector<std::string>& envelope,
                const std::string& payload) {
  ARGENT_ASSERT(!envelope.empty(), "a reply needs a routing frame");
  if (!send_first(router, zmq::buffer(envelope[0]), true)) return false;
  for (size_t i = 1; i < envelope.size(); ++i)
    router.send(zmq::buffer(envelope[i]), zmq::send_flags::sndmore | zmq::send_flags::dontwait);
  router.send(zmq::buffer(payload), zmq::send_flags::dontwait);
  return true;
}

bool send_frames(zmq::socket_t& router, std::vector<zmq::message_t>& frames) {
  if (frames.size() < 2) return false;
  if (!send_first(router, zmq::const_buffer(frames[0].data(), frames[0].size()), true))
    return false;
  for (size_t i = 1; i < frames.size(); ++i)
    router.send(frames[i], (i + 1 < frames.size() ? zmq::send_flags::sndmore
                                                    : zmq::send_flags::none) |
                               zmq::send_flags::dontwait);
  return true;
}

bool read_handshake_failure(zmq::socket_t& monitor, HandshakeFailure* out) {
  zmq::message_t event, address;
  if (!monitor.recv(event, zmq::recv_flags::dontwait)) return false;
  if (event.more()) (void)monitor.recv(address, zmq::recv_flags::none);
  if (event.size() < 6) return false;
  uint16_t id = 0;
  uint32_t value = 0;
  std::memcpy(&id, event.data(), 2);
  std::memcpy(&value, static_cast<const char*>(event.data()) + 2, 4);
  out->address = address.to_string();
  switch (id) {
    case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
      out->reason = "handshake failed (timed out or connection closed)";
      return true;
    case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
      out->reason = value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH
                        ? std::string("handshake with the wrong security mechanism (gateway.auth "
                                      "needs CURVE)")
                        : "handshake protocol error " + std::to_string(value);
      return true;
    case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
      out->reason = "handshake refused by the allow-list (ZAP status " + std::to_string(value) + ")";
      return true;
    default:
      return false;
  }
}

}  // namespace argent
