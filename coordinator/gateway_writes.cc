// The gateway's write requests (Upsert, Delete, Admin): validated on the gateway thread and
// queued for the step loop, which logs, applies and answers them (coordinator/updater.h).
#include "common/error.h"
#include "coordinator/gateway.h"
#include "coordinator/metrics.h"

namespace argent {

void Gateway::handle_write(const v1::Request& request, std::vector<std::string> envelope) {
  const bool admin = request.has_admin();
  if (admin && request.admin().action() == v1::AdminRequest::REBALANCE) {
    handle_rebalance(request.admin(), std::move(envelope));
    return;
  }
  const uint64_t request_id = admin ? request.admin().request_id()
                              : request.has_upsert() ? request.upsert().request_id()
                                                     : request.delete_().request_id();
  auto reply = [&](v1::StatusCode code, const std::string& message) {
    v1::Response r;
    v1::Status* status = nullptr;
    if (admin) {
      r.mutable_admin()->set_request_id(request_id);
      status = r.mutable_admin()->mutable_status();
    } else {
      r.mutable_mutation()->set_request_id(request_id);
      status = r.mutable_mutation()->mutable_status();
    }
    status->set_code(code);
    status->set_message(message);
    this->reply(envelope, r);
  };
  if (info_.mutations == nullptr) {
    reply(v1::UNIMPLEMENTED, "this server takes no writes");
    return;
  }
  PendingMutation pending;
  pending.request_id = request_id;
  if (admin) {
    // REBALANCE went its own way above: anything else but SNAPSHOT is a client error, never a
    // snapshot (an unknown action number used to truncate the log as one).
    const std::string problem = validate_snapshot(request.admin());
    if (!problem.empty()) {
      stats_.record_invalid();
      reply(v1::INVALID_ARGUMENT, problem);
      return;
    }
    pending.type = PendingMutation::Type::kSnapshot;
  } else {
    const std::string problem =
        request.has_upsert() ? validate_upsert(request.upsert(), meta_, config_, &pending.batch)
                             : validate_delete(request.delete_(), config_, &pending.batch);
    if (!problem.empty()) {
      stats_.record_invalid();
      reply(v1::INVALID_ARGUMENT, problem);
      return;
    }
  }
  pending.arrival = SteadyClock::now();
  pending.envelope = envelope;
  const int64_t bytes = request_bytes(pending);
  const PushResult pushed = info_.mutations->push(pending, bytes);
  if (pushed == PushResult::kClosed) {  // a failed or stopping cluster: not an overload
    reply(v1::UNAVAILABLE, info_.mutations->closed_reason() + "; not logged, not applied");
  } else if (pushed != PushResult::kQueued) {
    stats_.record_overloaded();
    reply(v1::OVERLOADED,
          overload_message("write", pushed, bytes, info_.mutations->held_bytes()));
  }
}

void Gateway::handle_rebalance(const v1::AdminRequest& request, std::vector<std::string> envelope) {
  auto reply = [&](v1::StatusCode code, const std::string& message) {
    v1::Response r;
    r.mutable_admin()->set_request_id(request.request_id());
    r.mutable_admin()->mutable_status()->set_code(code);
    r.mutable_admin()->mutable_status()->set_message(message);
    this->reply(envelope, r);
  };
  if (info_.rebalances == nullptr) {
    reply(v1::UNIMPLEMENTED, "this server does not rebalance");
    return;
  }
  PendingRebalance pending;
  const std::string problem = parse_rebalance_request(request, &pending.request);
  if (!problem.empty()) {
    stats_.record_invalid();
    reply(v1::INVALID_ARGUMENT, problem);
    return;
  }
  pending.request_id = request.request_id();
  pending.envelope = envelope;  // kept: a closed queue is answered below
  if (!info_.rebalances->push(std::move(pending))) {
    // A failed or stopping cluster (coordinator/server.cc closed the queue).
    reply(v1::UNAVAILABLE, info_.rebalances->closed_reason());
    return;
  }
  queue_.wake();  // the step loop may be waiting for searches
}

}  // namespace argent
