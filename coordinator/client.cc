#include "coordinator/client.h"

#include <thread>

#include "common/error.h"

namespace argent {
namespace {
constexpr std::chrono::milliseconds kSendTimeout(1000);
}  // namespace

uint64_t response_request_id(const v1::Response& r) {
  switch (r.body_case()) {
    case v1::Response::kSearch: return r.search().request_id();
    case v1::Response::kMutation: return r.mutation().request_id();
    case v1::Response::kStats: return r.stats().request_id();
    case v1::Response::kHealth: return r.health().request_id();
    case v1::Response::kAdmin: return r.admin().request_id();
    default: return 0;
  }
}

Client::Client(const std::string& endpoint, const ClientSecurity& security)
    : context_(1), socket_(context_, zmq::socket_type::dealer) {
  socket_.set(zmq::sockopt::linger, 0);
  // A DEALER blocks a send while it has no connection (e.g. one the server refused during the
  // handshake and ZeroMQ has not yet retried): bound that wait.
  socket_.set(zmq::sockopt::sndtimeo, int(kSendTimeout.count()));
  if (security.enabled()) {
    socket_.set(zmq::sockopt::curve_serverkey, security.server_public_key);
    socket_.set(zmq::sockopt::curve_publickey, security.client.public_key);
    socket_.set(zmq::sockopt::curve_secretkey, security.client.secret_key);
  }
  try {
    socket_.connect(endpoint);
  } catch (const zmq::error_t& e) {
    ARGENT_CHECK(false, "cannot connect to '", endpoint, "': ", e.what());
  }
}

uint64_t Client::send(v1::Request request) {
  uint64_t used = 0;
  auto assign = [&](auto* message) {
    if (message->request_id() == 0) message->set_request_id(next_id_++);
    used = message->request_id();
  };
  switch (request.body_case()) {
    case v1::Request::kSearch: assign(request.mutable_search()); break;
    case v1::Request::kUpsert: assign(request.mutable_upsert()); break;
    case v1::Request::kDelete: assign(request.mutable_delete_()); break;
    case v1::Request::kStats: assign(request.mutable_stats()); break;
    case v1::Request::kHealth: assign(request.mutable_health()); break;
    case v1::Request::kAdmin: assign(request.mutable_admin()); break;
    case v1::Request::BODY_NOT_SET: break;
  }
  send_raw(request.SerializeAsString());
  return used;
}

void Client::send_raw(const std::string& bytes) {
  if (!socket_.send(zmq::buffer(bytes), zmq::send_flags::none))
    ARGENT_THROW(ErrorCode::kUnavailable, "cannot send within ", kSendTimeout.count(),
                 " ms: no connection to the gateway (down, or it refused this client's "
                 "handshake)");
}

std::optional<v1::Response> Client::receive(std::chrono::milliseconds timeout) {
  std::vector<zmq::pollitem_t> items = {{socket_.handle(), 0, ZMQ_POLLIN, 0}};
  zmq::poll(items, timeout);
  if (!(items[0].revents & ZMQ_POLLIN)) return std::nullopt;
  zmq::message_t message;
  (void)socket_.recv(message, zmq::recv_flags::none);
  v1::Response response;
  ARGENT_CHECK_DATA(response.ParseFromArray(message.data(), int(message.size())),
                    "reply of ", message.size(), " bytes is not an argent.v1.Response");
  return response;
}

v1::Response Client::call(v1::Request request, std::chrono::milliseconds timeout) {
  const uint64_t id = send(std::move(request));
  const auto give_up = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        give_up - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    std::optional<v1::Response> r = receive(left);
    if (!r) break;
    // Replies to earlier, abandoned requests are skipped; envelope errors answer this one.
    if (response_request_id(*r) == id || response_request_id(*r) == 0) return *r;
  }
  ARGENT_THROW(ErrorCode::kDeadlineExceeded, "no reply to request ", id, " within ",
               timeout.count(), " ms");
}

v1::SearchResponse Client::search(const v1::SearchRequest& request,
                                  std::chrono::milliseconds timeout) {
  v1::Request r;
  *r.mutable_search() = request;
  const v1::Response response = call(std::move(r), timeout);
  if (response.has_error()) {
    v1::SearchResponse s;
    *s.mutable_status() = response.error();
    return s;
  }
  return response.search();
}

bool Client::wait_until_healthy(std::chrono::milliseconds timeout) {
  const auto give_up = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < give_up) {
    v1::Request r;
    r.mutable_health();
    uint64_t id = 0;
    try {
      id = send(r);
    } catch (const Error&) {
      continue;  // not connected (yet): try again until the timeout
    }
    const auto poll_until = std::chrono::steady_clock::now() + std::chrono::milliseconds(200);
    while (std::chrono::steady_clock::now() < poll_until) {
      std::optional<v1::Response> reply = receive(std::chrono::milliseconds(50));
      if (reply && reply->has_health() && reply->health().request_id() == id &&
          reply->health().status().code() == v1::OK)
        return true;
    }
  }
  return false;
}

}  // namespace argent
