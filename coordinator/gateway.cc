#include "coordinator/gateway.h"

#include <zmq_addon.hpp>

#include <cmath>
#include <future>

#include "common/error.h"
#include "common/log.h"
#include "coordinator/replier.h"
#include "coordinator/value_model.h"
#include "shard/filter.h"

namespace argent {
namespace {

constexpr size_t kMaxExcludedIds = 100000;
constexpr int64_t kMaxRerankDepth = 100000;  // the range of rerank.depth

v1::Response error_response(v1::StatusCode code, const std::string& message) {
  v1::Response r;
  r.mutable_error()->set_code(code);
  r.mutable_error()->set_message(message);
  return r;
}

void send_frames(zmq::socket_t& router, const std::vector<std::string>& envelope,
                 const std::string& payload) {
  for (const std::string& frame : envelope) router.send(zmq::buffer(frame), zmq::send_flags::sndmore);
  router.send(zmq::buffer(payload), zmq::send_flags::none);
}

void send_response(zmq::socket_t& router, const std::vector<std::string>& envelope,
                   const v1::Response& response) {
  send_frames(router, envelope, response.SerializeAsString());
}

v1::Response search_error(uint64_t request_id, v1::StatusCode code, const std::string& message) {
  v1::Response r;
  v1::SearchResponse* s = r.mutable_search();
  s->set_request_id(request_id);
  s->mutable_status()->set_code(code);
  s->mutable_status()->set_message(message);
  return r;
}

}  // namespace

std::string validate_search(const v1::SearchRequest& request, const IndexMeta& meta,
                            const Config& config, PendingSearch* out) {
  std::ostringstream why;
  if (request.embedding_size() != meta.dim) {
    why << "embedding has " << request.embedding_size() << " values, the index has dimension "
        << meta.dim;
    return why.str();
  }
  for (int j = 0; j < request.embedding_size(); ++j) {
    if (!std::isfinite(request.embedding(j))) {
      why << "embedding[" << j << "] is " << request.embedding(j) << "; values must be finite";
      return why.str();
    }
  }
  const int64_t k = request.k() == 0 ? config.search.k : request.k();
  if (k < 1 || k > config.search.max_k) {
    why << "k = " << k << " is outside [1, search.max_k = " << config.search.max_k << "]";
    return why.str();
  }
  if (request.nprobe() < 0) {
    why << "nprobe = " << request.nprobe() << " is negative";
    return why.str();
  }
  if (request.timeout_ms() < 0) {
    why << "timeout_ms = " << request.timeout_ms() << " is negative";
    return why.str();
  }
  if (size_t(request.exclude_ids_size()) > kMaxExcludedIds) {
    why << request.exclude_ids_size() << " excluded ids; at most " << kMaxExcludedIds;
    return why.str();
  }
  if (!config.rerank.enabled) {
    if (request.task_weights_size() > 0)
      return "task_weights given, but this server runs no reranker (rerank.enabled is false)";
    if (request.rerank_depth() != 0)
      return "rerank_depth given, but this server runs no reranker (rerank.enabled is false)";
  } else {
    const std::string weights = task_weights_problem(
        request.task_weights().data(), request.task_weights_size(),
        int64_t(config.rerank.tasks.size()));
    if (!weights.empty()) return weights;
    if (request.rerank_depth() < 0 || request.rerank_depth() > kMaxRerankDepth) {
      why << "rerank_depth = " << request.rerank_depth() << " is outside [0, " << kMaxRerankDepth
          << "] (0: rerank.depth)";
      return why.str();
    }
  }
  try {
    compile_filter(request.filter(), meta.bloom);
  } catch (const Error& e) {
    return std::string("filter: ") + e.what();
  }
  out->request_id = request.request_id();
  out->embedding.assign(request.embedding().begin(), request.embedding().end());
  out->k = k;
  const int64_t nprobe = request.nprobe() == 0 ? config.search.nprobe : request.nprobe();
  out->exact = request.exact() || nprobe >= meta.nlist;
  out->nprobe = out->exact ? 0 : int32_t(nprobe);
  out->filter = request.filter();
  out->exclude_ids.assign(request.exclude_ids().begin(), request.exclude_ids().end());
  out->task_weights.assign(request.task_weights().begin(), request.task_weights().end());
  out->rerank_depth = request.rerank_depth() == 0 ? config.rerank.depth : request.rerank_depth();
  out->arrival = SteadyClock::now();
  const int64_t timeout_ms =
      request.timeout_ms() > 0 ? request.timeout_ms() : config.serve.default_timeout_ms;
  out->deadline = timeout_ms > 0 ? out->arrival + std::chrono::milliseconds(timeout_ms)
                                 : SteadyClock::time_point::max();
  return "";
}

Gateway::Gateway(zmq::context_t& context, const Config& config, const IndexMeta& meta,
                 RequestQueue& queue, ServerStats& stats, GatewayInfo info)
    : context_(context),
      config_(config),
      meta_(meta),
      queue_(queue),
      stats_(stats),
      info_(std::move(info)) {}

Gateway::~Gateway() { stop(); }

void Gateway::start() {
  std::promise<std::string> bound;
  std::future<std::string> bind_result = bound.get_future();
  thread_ = std::thread([this, &bound] {
    zmq::socket_t router(context_, zmq::socket_type::router);
    zmq::socket_t inbox(context_, zmq::socket_type::pull);
    try {
      // ZeroMQ disconnects a peer whose message exceeds maxmsgsize before it is buffered whole;
      // messages up to twice the limit are read and answered with a clear error instead.
      router.set(zmq::sockopt::maxmsgsize, int64_t(2 * config_.serve.max_message_bytes));
      router.set(zmq::sockopt::linger, 1000);  // flush last replies on shutdown
      router.bind(config_.serve.endpoint);
      inbox.bind(kReplyInbox);
    } catch (const zmq::error_t& e) {
      bound.set_value(std::string("cannot bind gateway endpoint '") + config_.serve.endpoint +
                      "': " + e.what());
      return;
    }
    bound.set_value("");
    run(router, inbox);
  });
  const std::string problem = bind_result.get();
  if (!problem.empty()) {
    thread_.join();
    ARGENT_THROW(ErrorCode::kUnavailable, problem);
  }
  ARGENT_LOG(kInfo, "gateway listening on ", config_.serve.endpoint);
}

void Gateway::stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

void Gateway::run(zmq::socket_t& router, zmq::socket_t& inbox) {
  std::vector<zmq::pollitem_t> items = {{router.handle(), 0, ZMQ_POLLIN, 0},
                                        {inbox.handle(), 0, ZMQ_POLLIN, 0}};
  // Forwards every reply waiting in the inbox, frame by frame.
  auto forward_replies = [&] {
    for (;;) {
      std::vector<zmq::message_t> frames;
      if (!zmq::recv_multipart(inbox, std::back_inserter(frames), zmq::recv_flags::dontwait))
        break;
      for (size_t i = 0; i < frames.size(); ++i)
        router.send(frames[i], i + 1 < frames.size() ? zmq::send_flags::sndmore
                                                     : zmq::send_flags::none);
    }
  };
  while (!stop_) {
    try {
      zmq::poll(items, std::chrono::milliseconds(50));
      if (items[1].revents & ZMQ_POLLIN) forward_replies();
      if (items[0].revents & ZMQ_POLLIN) {
        for (int budget = 0; budget < 256; ++budget) {
          std::vector<zmq::message_t> frames;
          if (!zmq::recv_multipart(router, std::back_inserter(frames), zmq::recv_flags::dontwait))
            break;
          handle(frames, router);
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

void Gateway::handle(std::vector<zmq::message_t>& frames, zmq::socket_t& router) {
  if (frames.size() < 2) {
    ARGENT_LOG(kWarn, "gateway: dropped a message with ", frames.size(),
               " frames (no routing envelope)");
    return;
  }
  std::vector<std::string> envelope;
  for (size_t i = 0; i + 1 < frames.size(); ++i) envelope.push_back(frames[i].to_string());
  const zmq::message_t& payload = frames.back();

  if (int64_t(payload.size()) > config_.serve.max_message_bytes) {
    stats_.record_invalid();
    send_response(router, envelope,
                  error_response(v1::INVALID_ARGUMENT,
                                 "request of " + std::to_string(payload.size()) +
                                     " bytes exceeds serve.max_message_bytes = " +
                                     std::to_string(config_.serve.max_message_bytes)));
    return;
  }
  v1::Request request;
  if (!request.ParseFromArray(payload.data(), int(payload.size()))) {
    stats_.record_invalid();
    send_response(router, envelope,
                  error_response(v1::INVALID_ARGUMENT,
                                 "malformed message: " + std::to_string(payload.size()) +
                                     " bytes that do not parse as an argent.v1.Request"));
    return;
  }
  switch (request.body_case()) {
    case v1::Request::kSearch: {
      PendingSearch pending;
      const std::string problem = validate_search(request.search(), meta_, config_, &pending);
      if (!problem.empty()) {
        stats_.record_invalid();
        send_response(router, envelope,
                      search_error(request.search().request_id(), v1::INVALID_ARGUMENT, problem));
        return;
      }
      pending.envelope = std::move(envelope);
      if (!queue_.push(pending)) {
        const std::string closed = queue_.closed_reason();
        if (!closed.empty()) {  // a failed or stopping cluster: not a retry-later overload
          send_response(router, pending.envelope,
                        search_error(pending.request_id, v1::UNAVAILABLE, closed));
          return;
        }
        stats_.record_overloaded();
        send_response(router, pending.envelope,
                      search_error(pending.request_id, v1::OVERLOADED,
                                   "request queue is full (serve.max_queue = " +
                                       std::to_string(config_.serve.max_queue) +
                                       "); retry later"));
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
      send_response(router, envelope, r);
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
      }
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
      send_response(router, envelope, r);
      return;
    }
    case v1::Request::kUpsert:
    case v1::Request::kDelete:
    case v1::Request::kAdmin:
      handle_write(request, std::move(envelope), router);
      return;
    case v1::Request::BODY_NOT_SET:
      stats_.record_invalid();
      send_response(router, envelope,
                    error_response(v1::INVALID_ARGUMENT,
                                   "empty Request: set one of search, upsert, delete, stats, "
                                   "health"));
      return;
  }
}

}  // namespace argent
