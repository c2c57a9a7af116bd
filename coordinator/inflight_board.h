// Rank 0's record of the requests that a step or the merge thread has taken from the queues
// and not yet answered, so that a cluster failure answers each of them exactly once.
//
// The step loop track()s a step's requests before its first collective; whoever answers them
// normally (the merge thread, the updater's acknowledgement) first release()s them, and answers
// only when that returns true. fail() — from the watchdog or the step loop — marks the board
// failed and answers everything still tracked UNAVAILABLE; later release()s return false.
// Thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "coordinator/replier.h"
#include "coordinator/request_queue.h"
#include "coordinator/update_queue.h"

namespace argent {

// Who to answer, and with which response message.
struct ReplyTarget {
  enum class Kind { kSearch, kMutation, kAdmin };
  Kind kind = Kind::kSearch;
  std::vector<std::string> envelope;
  uint64_t request_id = 0;
};
ReplyTarget reply_target(const PendingSearch& r);
ReplyTarget reply_target(const PendingMutation& m);
// `target`'s response type with status `code` and `message`.
v1::Response status_reply(const ReplyTarget& target, v1::StatusCode code,
                          const std::string& message);

class InFlightBoard {
 public:
  // Returns the token the owner releases them with. After fail(), answers them at once
  // (UNAVAILABLE, through `replier`) instead: a step loop that took requests from the queue
  // just before the failure still has them answered.
  uint64_t track(std::vector<ReplyTarget> targets, Replier& replier);
  template <typename Pending>
  uint64_t track_all(const std::vector<Pending>& requests, Replier& replier) {
    std::vector<ReplyTarget> targets;
    for (const Pending& r : requests) targets.push_back(reply_target(r));
    return track(std::move(targets), replier);
  }
  // True: the caller owns the replies now. False: the board failed and already answered them.
  bool release(uint64_t token);
  // Marks the board failed and answers every tracked request UNAVAILABLE with `message`
  // through `replier` (the caller's thread's own). Returns how many it answered.
  int64_t fail(const std::string& message, Replier& replier);

 private:
  static void answer(const ReplyTarget& t, const std::string& message, Replier& replier);

  std::mutex mu_;
  bool failed_ = false;                                // GUARDED_BY(mu_)
  std::string message_;                                // GUARDED_BY(mu_): of the failure
  uint64_t next_token_ = 1;                            // GUARDED_BY(mu_)
  std::map<uint64_t, std::vector<ReplyTarget>> open_;  // GUARDED_BY(mu_)
};

}  // namespace argent
