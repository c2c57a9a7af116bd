#include "coordinator/gateway.h"

#include <zmq_addon.hpp>

#include <future>

#include "common/error.h"
#include "common/log.h"
#include "common/version.h"
#include "coordinator/metrics.h"
#include "coordinator/replier.h"

namespace argent {
namespace {

// When the gateway thread received the message it is handling: the latency of the replies it
// sends itself (errors, Health, Stats).
thread_local SteadyClock::time_point t_received;

v1::Response error_response(v1::StatusCode code, const std::string& message) {
  v1::Response r;
  r.mutable_error()->set_code(code);
  r.mutable_error()->set_message(message);
  return r;
}

v1::Response search_error(uint64_t request_id, v1::StatusCode code, const std::string& message) {
  v1::Response r;
  v1::SearchResponse* s = r.mutable_search();
  s->set_request_id(request_id);
  s->mutable_status()->set_code(code);
  s->mutable_status()->set_message(message);
  return r;
}

uint64_t request_id_of(const v1::Request& r) {
  switch (r.body_case()) {
    case v1::Request::kSearch: return r.search().request_id();
    case v1::Request::kUpsert: return r.upsert().request_id();
    case v1::Request::kDelete: return r.delete_().request_id();
    case v1::Request::kStats: return r.stats().request_id();
    case v1::Request::kHealth: return r.health().request_id();
    case v1::Request::kAdmin: return r.admin().request_id();
    default: return 0;
  }
}

}  // namespace

std::string Gateway::overload_message(const std::string& queue, PushResult why, int64_t bytes,
                                      int64_t held) const {
  if (why == PushResult::kOverBytes)
    return queue + " queue holds " + std::to_string(held) + " bytes of requests and this one " +
           std::to_string(bytes) + " more (serve.max_queue_bytes = " +
           std::to_string(config_.serve.max_queue_bytes) + "); retry later";
  return queue + " queue is full (serve.max_queue = " + std::to_string(config_.serve.max_queue) +
         "); retry later";
}

Gateway::Gateway(zmq::context_t& context, const Config& config, const IndexMeta& meta,
                 RequestQueue& queue, ServerStats& stats, GatewayInfo info)
    : context_(context),
      config_(config),
      meta_(meta),
      queue_(queue),
      stats_(stats),
      info_(std::move(info)),
      rejections_(config.gateway.log_rejections_per_s) {}

Gateway::~Gateway() { stop(); }

void Gateway::start() {
  if (config_.gateway.auth) {
    // libzmq consults the handler during each handshake: it must be bound before the socket is.
    zap_ = std::make_unique<ZapHandler>(context_, config_.gateway, rejections_);
    zap_->start();
  }
  started_ = SteadyClock::now();
  std::promise<std::string> bound;
  std::future<std::string> bind_result = bound.get_future();
  thread_ = std::thread([this, &bound] {
    zmq::socket_t router(context_, zmq::socket_type::router);
    zmq::socket_t inbox(context_, zmq::socket_type::pull);
    zmq::socket_t monitor(context_, zmq::socket_type::pair);
    try {
      configure_router(router, config_);
      ARGENT_CHECK(zmq_socket_monitor(router.handle(), kGatewayMonitor,
                                      ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                                          ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                                          ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) == 0,
                   "cannot monitor the gateway socket: ", zmq_strerror(zmq_errno()));
      monitor.connect(kGatewayMonitor);
      router.bind(config_.serve.endpoint);
      inbox.bind(kReplyInbox);
    } catch (const std::exception& e) {
      bound.set_value(std::string("cannot bind gateway endpoint '") + config_.serve.endpoint +
                      "': " + e.what());
      return;
    }
    bound.set_value("");
    router_ = &router;
    run(router, inbox, monitor);
    router_ = nullptr;
    zmq_socket_monitor(router.handle(), nullptr, 0);
  });
  const std::string problem = bind_result.get();
  if (!problem.empty()) {
    thread_.join();
    ARGENT_THROW(ErrorCode::kUnavailable, problem);
  }
  ARGENT_LOG(kInfo, "gateway listening on ", config_.serve.endpoint,
             config_.gateway.auth ? " (CURVE, allow-list " + config_.gateway.allow_list + ")"
                                  : std::string(" (no authentication: gateway.auth is off)"));
}

void Gateway::stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  if (zap_) zap_->stop();
}

void Gateway::reply(const std::vector<std::string>& envelope, const v1::Response& response) {
  metrics().observe_response(response, t_received);
  if (!send_reply(*router_, envelope, response.SerializeAsString())) stats_.record_dropped_reply();
}

bool Gateway::authorized(const v1::Request& request, const IncomingMessage& message) {
  if (!config_.gateway.auth) return true;
  const ClientRole held = role_of_user_id(message.user_id);
  const ClientRole needed = required_role(request);
  if (role_allows(held, needed)) return true;
  stats_.record_permission_denied();
  const std::string key = message.user_id.substr(message.user_id.find(':') + 1);
  rejections_.refuse(std::string("a request needing the ") + role_name(needed) + " role from " +
                     role_name(held) + " key " + key);
  const std::string why = std::string("this request needs the ") + role_name(needed) +
                          " role; the client's key has the " + role_name(held) + " role";
  // The reply has the request's own type, so a client waiting for its request_id sees it.
  v1::Response r;
  v1::Status* status = nullptr;
  switch (request.body_case()) {
    case v1::Request::kSearch:
      r.mutable_search()->set_request_id(request.search().request_id());
      status = r.mutable_search()->mutable_status();
      break;
    case v1::Request::kUpsert:
      r.mutable_mutation()->set_request_id(request.upsert().request_id());
      status = r.mutable_mutation()->mutable_status();
      break;
    case v1::Request::kDelete:
      r.mutable_mutation()->set_request_id(request.delete_().request_id());
      status = r.mutable_mutation()->mutable_status();
      break;
    case v1::Request::kAdmin:
      r.mutable_admin()->set_request_id(request.admin().request_id());
      status = r.mutable_admin()->mutable_status();
      break;
    default:
      status = r.mutable_error();
      break;
  }
  status->set_code(held == ClientRole::kNone ? v1::UNAUTHENTICATED : v1::PERMISSION_DENIED);
  status->set_message(why);
  reply(message.envelope, r);
  return false;
}


void Gateway::run(zmq::socket_t& router, zmq::socket_t& inbox, zmq::socket_t& monitor) {
  std::vector<zmq::pollitem_t> items = {{router.handle(), 0, ZMQ_POLLIN, 0},
                                        {inbox.handle(), 0, ZMQ_POLLIN, 0},
                                        {monitor.handle(), 0, ZMQ_POLLIN, 0}};
  // Forwards every reply waiting in the inbox; one whose client is gone or full is dropped.
  auto forward_replies = [&] {
    for (;;) {
      std::vector<zmq::message_t> frames;
      if (!zmq::recv_multipart(inbox, std::back_inserter(frames), zmq::recv_flags::dontwait))
        break;
      if (!send_frames(router, frames)) stats_.record_dropped_reply();
    }
  };
  // Failed handshakes (garbage bytes, a NULL client at a CURVE gateway, a refused key).
  auto report_handshakes = [&] {
    HandshakeFailure failure;
    for (int budget = 0; budget < 256; ++budget) {
      zmq::pollitem_t item = {monitor.handle(), 0, ZMQ_POLLIN, 0};
      if (zmq::poll(&item, 1, std::chrono::milliseconds(0)) == 0) break;
      if (!read_handshake_failure(monitor, &failure)) continue;
      stats_.record_unauthenticated();
      rejections_.refuse("a connection from " + failure.address + ": " + failure.reason);
    }
  };
  while (!stop_) {
    try {
      zmq::poll(items, std::chrono::milliseconds(50));
      if (items[1].revents & ZMQ_POLLIN) forward_replies();
      if (items[2].revents & ZMQ_POLLIN) report_handshakes();
      if (items[0].revents & ZMQ_POLLIN) {
        for (int budget = 0; budget < 256; ++budget) {
          IncomingMessage message;
          if (!receive_bounded(router, config_, &message)) break;
          handle(message);
        }
      }
    } catch (const std::exception& e) {
      // A client can cause at most one failed message, never a stopped gateway.
      ARGENT_LOG(kError, "gateway: ", e.what());
    }
  }
  // Replies sent before stop() (the shutdown's UNAVAILABLE answers among them) still go out.
  try {
    forward_replies();
  } catch (const std::exception& e) {
    ARGENT_LOG(kError, "gateway: ", e.what());
  }
}

void Gateway::handle(IncomingMessage& message) {
  t_received = SteadyClock::now();
  if (!message.refusal.empty()) {
    stats_.record_dropped_request();
    if (message.envelope.empty()) {
      ARGENT_LOG(kWarn, "gateway: dropped a ", message.refusal);
      return;
    }
    reply(message.envelope, error_response(v1::INVALID_ARGUMENT, message.refusal));
    return;
  }
  std::vector<std::string>& envelope = message.envelope;
  const zmq::message_t& payload = message.payload;
  v1::Request request;
  if (!request.ParseFromArray(payload.data(), int(payload.size()))) {
    stats_.record_invalid();
    reply(envelope, error_response(v1::INVALID_ARGUMENT,
                                   "malformed message: " + std::to_string(payload.size()) +
                                       " bytes that do not parse as an argent.v1.Request"));
    return;
  }
  if (!authorized(request, message)) return;
  const LogRequestScope log_scope(request_id_of(request));
  switch (request.body_case()) {
    case v1::Request::kSearch: {
      PendingSearch pending;
      const std::string problem = validate_search(request.search(), meta_, config_, &pending);
      if (!problem.empty()) {
        stats_.record_invalid();
        reply(envelope, search_error(request.search().request_id(), v1::INVALID_ARGUMENT, problem));
        return;
      }
      pending.envelope = std::move(envelope);
      const int64_t bytes =
          search_bytes(pending, info_.ranks, config_.rerank.enabled ? meta_.d_pad : 0);
      const PushResult pushed = queue_.push(pending, bytes);
      if (pushed == PushResult::kClosed) {  // a failed or stopping cluster: not an overload
        reply(pending.envelope,
              search_error(pending.request_id, v1::UNAVAILABLE, queue_.closed_reason()));
      } else if (pushed != PushResult::kQueued) {
        stats_.record_overloaded();
        reply(pending.envelope,
              search_error(pending.request_id, v1::OVERLOADED,
                           overload_message("request", pushed, bytes, queue_.held_bytes())));
      }
      return;
    }
    case v1::Request::kHealth: {
      const StatsSnapshot s = stats_.snapshot();
      v1::Response r;
      v1::HealthResponse* h = r.mutable_health();
      h->set_request_id(request.health().request_id());
      h->mutable_status()->set_code(v1::OK);
      h->set_ranks(info_.ranks);
      int64_t items = 0;
      for (int64_t n : s.items_per_rank) items += n;
      h->set_items(items);
      h->set_dim(meta_.dim);
      h->set_backend(info_.backend);
      h->set_version(argent_version());
      reply(envelope, r);
      return;
    }
    case v1::Request::kStats: {
      const StatsSnapshot s = stats_.snapshot();
      v1::Response r;
      v1::StatsResponse* out = r.mutable_stats();
      out->set_request_id(request.stats().request_id());
      out->mutable_status()->set_code(v1::OK);
      for (size_t rank = 0; rank < s.items_per_rank.size(); ++rank) {
        v1::ShardStats* shard = out->add_shards();
        shard->set_rank(int32_t(rank));
        shard->set_items(s.items_per_rank[rank]);
        if (rank < s.partitions_per_rank.size())
          for (int32_t p : s.partitions_per_rank[rank]) shard->add_partitions(p);
        if (rank < s.tombstones_per_rank.size()) shard->set_tombstones(s.tombstones_per_rank[rank]);
        if (rank < s.step_ms_per_rank.size()) shard->set_step_ms(s.step_ms_per_rank[rank]);
        if (rank < s.steps_per_rank.size()) shard->set_steps(s.steps_per_rank[rank]);
      }
      out->set_version(argent_version());
      out->set_backend(info_.backend);
      out->set_dim(meta_.dim);
      out->set_index_partitions(meta_.partitions);
      out->set_uptime_s(std::chrono::duration<double>(SteadyClock::now() - started_).count());
      out->set_requests(s.requests);
      out->set_qps(s.qps);
      out->set_p50_ms(s.p50_ms);
      out->set_p90_ms(s.p90_ms);
      out->set_p99_ms(s.p99_ms);
      for (int64_t b : s.batch_size_histogram) out->add_batch_size_histogram(b);
      out->set_queue_depth(queue_.depth());
      out->set_rejected_overloaded(s.rejected_overloaded);
      out->set_rejected_deadline(s.rejected_deadline);
      out->set_rejected_invalid(s.rejected_invalid);
      out->set_dropped_replies(s.dropped_replies);
      out->set_dropped_requests(s.dropped_requests);
      out->set_rejected_unauthenticated(s.rejected_unauthenticated);
      out->set_rejected_permission(s.rejected_permission);
      if (info_.update_stats != nullptr) {
        const UpdateStatsSnapshot u = info_.update_stats->snapshot();
        out->set_upserts(u.upserts);
        out->set_deletes(u.deletes);
        out->set_upserts_per_s(u.upserts_per_s);
        out->set_deletes_per_s(u.deletes_per_s);
        out->set_visible_p50_ms(u.visible_p50_ms);
        out->set_visible_p99_ms(u.visible_p99_ms);
        out->set_tombstone_ratio(u.tombstone_ratio);
        out->set_wal_sequence(u.wal_sequence);
        out->set_wal_bytes(u.wal_bytes);
        out->set_snapshot_sequence(u.snapshot_sequence);
      }
      if (info_.rebalance_status != nullptr)
        fill_rebalance_stats(info_.rebalance_status->snapshot(), out);
      reply(envelope, r);
      return;
    }
    case v1::Request::kUpsert:
    case v1::Request::kDelete:
    case v1::Request::kAdmin:
      handle_write(request, std::move(envelope));
      return;
    case v1::Request::BODY_NOT_SET:
      stats_.record_invalid();
      reply(envelope,
                    error_response(v1::INVALID_ARGUMENT,
                                   "empty Request: set one of search, upsert, delete, admin, "
                                   "stats, health"));
      return;
  }
}

}  // namespace argent
