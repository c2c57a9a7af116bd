#include "coordinator/rejection_log.h"

#include "common/log.h"

namespace argent {

void RejectionLog::refuse(const std::string& what) {
  int64_t suppressed = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const Clock::time_point now = Clock::now();
    if (now - window_start_ >= std::chrono::seconds(1)) {
      window_start_ = now;
      in_window_ = 0;
    }
    if (in_window_ >= per_second_) {
      ++suppressed_;
      ++suppressed_total_;
      return;
    }
    ++in_window_;
    suppressed = suppressed_;
    suppressed_ = 0;
  }
  if (suppressed > 0) {
    ARGENT_LOG(kWarn, "gateway: refused ", what, " (and ", suppressed,
               " more refusals not logged: over gateway.log_rejections_per_s)");
  } else {
    ARGENT_LOG(kWarn, "gateway: refused ", what);
  }
}

int64_t RejectionLog::suppressed_total() const {
  std::lock_guard<std::mutex> lock(mu_);
  return suppressed_total_;
}

}  // namespace argent
