// A rate-limited log for refusals (bad handshakes, unknown keys, forbidden requests): a hostile
// client can make the gateway refuse it thousands of times a second, and each refusal must be
// visible without letting the log itself become the attack. At most `per_second` lines a
// second are written; the rest are counted and the count is appended to the next line written.
// Thread-safe (the ZAP handler and the gateway thread share one).
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>

namespace argent {

class RejectionLog {
 public:
  explicit RejectionLog(int64_t per_second) : per_second_(per_second) {}

  // Logs "gateway: refused <what>" at warn level, or counts it when over the rate.
  void refuse(const std::string& what);
  int64_t suppressed_total() const;

 private:
  using Clock = std::chrono::steady_clock;
  mutable std::mutex mu_;
  int64_t per_second_;
  Clock::time_point window_start_{};
  int64_t in_window_ = 0;
  int64_t suppressed_ = 0;        // since the last line written
  int64_t suppressed_total_ = 0;  // since start
};

}  // namespace argent
