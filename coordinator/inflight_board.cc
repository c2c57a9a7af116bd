#include "coordinator/inflight_board.h"

namespace argent {

ReplyTarget reply_target(const PendingSearch& r) {
  return ReplyTarget{ReplyTarget::Kind::kSearch, r.envelope, r.request_id};
}

ReplyTarget reply_target(const PendingMutation& m) {
  return ReplyTarget{m.type == PendingMutation::Type::kSnapshot ? ReplyTarget::Kind::kAdmin
                                                                : ReplyTarget::Kind::kMutation,
                     m.envelope, m.request_id};
}

v1::Response status_reply(const ReplyTarget& t, v1::StatusCode code, const std::string& message) {
  v1::Response out;
  v1::Status* status = nullptr;
  switch (t.kind) {
    case ReplyTarget::Kind::kSearch:
      out.mutable_search()->set_request_id(t.request_id);
      status = out.mutable_search()->mutable_status();
      break;
    case ReplyTarget::Kind::kMutation:
      out.mutable_mutation()->set_request_id(t.request_id);
      status = out.mutable_mutation()->mutable_status();
      break;
    case ReplyTarget::Kind::kAdmin:
      out.mutable_admin()->set_request_id(t.request_id);
      status = out.mutable_admin()->mutable_status();
      break;
  }
  status->set_code(code);
  status->set_message(message);
  return out;
}

void InFlightBoard::answer(const ReplyTarget& t, const std::string& message, Replier& replier) {
  // A write's fate is unknown here: it may be in the log, and then recovery applies it.
  std::string text = message;
  if (t.kind == ReplyTarget::Kind::kMutation)
    text += "; not acknowledged (if it reached the write-ahead log, recovery applies it)";
  else if (t.kind == ReplyTarget::Kind::kAdmin)
    text += "; the admin action is not confirmed (check argent admin status once the cluster is back)";
  replier.send(t.envelope, status_reply(t, v1::UNAVAILABLE, text));
}

uint64_t InFlightBoard::track(std::vector<ReplyTarget> targets, Replier& replier) {
  std::string failed;
  uint64_t token = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    token = next_token_++;
    if (!failed_) {
      open_.emplace(token, std::move(targets));
      return token;
    }
    failed = message_;
  }
  for (const ReplyTarget& t : targets) answer(t, failed, replier);
  return token;
}

bool InFlightBoard::release(uint64_t token) {
  std::lock_guard<std::mutex> lock(mu_);
  return open_.erase(token) > 0;
}

int64_t InFlightBoard::fail(const std::string& message, Replier& replier) {
  std::map<uint64_t, std::vector<ReplyTarget>> open;
  {
    std::lock_guard<std::mutex> lock(mu_);
    failed_ = true;
    message_ = message;
    open.swap(open_);
  }
  int64_t answered = 0;
  for (const auto& [token, targets] : open) {
    for (const ReplyTarget& t : targets) {
      answer(t, message, replier);
      ++answered;
    }
  }
  return answered;
}

}  // namespace argent
