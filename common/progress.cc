#include "common/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

namespace argent {

Progress::Progress(std::string label, int64_t total)
    : label_(std::move(label)),
      total_(std::max<int64_t>(total, 1)),
      enabled_(::isatty(STDERR_FILENO) != 0),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

Progress::~Progress() { finish(); }

void Progress::add(int64_t done) {
  done_.fetch_add(done, std::memory_order_relaxed);
  if (!enabled_) return;
  const auto now = std::chrono::steady_clock::now();
  std::unique_lock<std::mutex> lock(mu_, std::try_to_lock);
  if (!lock.owns_lock() || now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  draw(false);
}

void Progress::finish() {
  std::lock_guard<std::mutex> lock(mu_);
  if (finished_ || !enabled_) return;
  finished_ = true;
  draw(true);
}

void Progress::draw(bool final) {
  constexpr int kWidth = 30;
  const int64_t done = std::min(done_.load(std::memory_order_relaxed), total_);
  const double frac = double(done) / double(total_);
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const int filled = int(frac * kWidth);
  std::string bar(size_t(filled), '#');
  bar.append(size_t(kWidth - filled), '.');
  std::fprintf(stderr, "\r%-24s [%s] %5.1f%%  %.1fs%s", label_.c_str(), bar.c_str(), 100 * frac,
               secs, final ? "\n" : "");
  std::fflush(stderr);
}

}  // namespace argent
