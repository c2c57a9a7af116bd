// A progress bar on stderr for long operations (index builds, snapshots, replay, rebalance).
// Drawn only when stderr is a terminal, so logs and CI output stay clean; thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>

namespace argent {

class Progress {
 public:
  Progress(std::string label, int64_t total);
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  void add(int64_t done);
  void finish();

 private:
  void draw(bool final);

  std::string label_;
  int64_t total_;
  std::atomic<int64_t> done_{0};
  bool enabled_;
  bool finished_ = false;
  std::mutex mu_;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

}  // namespace argent
