#include "coordinator/watchdog.h"

#include <unistd.h>

#include <cstdio>
#include <memory>

#include "common/log.h"

namespace argent {
namespace {

// How often the thread looks; a detection is at most this late.
constexpr std::chrono::milliseconds kPollInterval(10);
// A step slower than this makes the watchdog ask whether a peer is gone (every few polls): far
// above a healthy step's collectives, far below any deadline.
constexpr double kProbePeersAfterMs = 100;
constexpr int kProbeEveryPolls = 5;

double ms_since(Watchdog::Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Watchdog::Clock::now() - t).count();
}

std::string describe(const StepHeader& h) {
  std::string s = "step " + std::to_string(h.step) + " (" + step_op_name(h.op);
  if (h.batch > 0) s += ", batch " + std::to_string(h.batch);
  return s + ")";
}

}  // namespace

Watchdog::Watchdog(Communicator& data, int rank, const ServeConfig& config,
                   std::function<bool()> shutdown_requested, FailureHandler on_failure,
                   std::function<std::string()> lost_peers)
    : data_(data),
      rank_(rank),
      // Ranks other than 0 wait a grace longer: the coordinator should be the one to notice,
      // since it answers the clients and can name the rank that failed.
      step_timeout_(config.step_timeout_ms + (rank == 0 ? 0 : config.abort_grace_ms)),
      snapshot_timeout_(config.snapshot_timeout_ms + (rank == 0 ? 0 : config.abort_grace_ms)),
      abort_grace_(config.abort_grace_ms),
      shutdown_requested_(std::move(shutdown_requested)),
      on_failure_(std::move(on_failure)),
      lost_peers_(std::move(lost_peers)),
      started_(Clock::now()),
      thread_([this] { run(); }) {}

double Watchdog::ms_since_last_step() {
  std::lock_guard<std::mutex> lock(mu_);
  return ms_since(started_);
}

Watchdog::~Watchdog() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

std::chrono::milliseconds Watchdog::deadline_of(const StepHeader& h) const {
  switch (StepOp(h.op)) {
    // Steps whose work grows with a whole partition or shard, not with a batch: a snapshot
    // writes every partition; a move's begin encodes the partition, its commit adds it, replays
    // the forwarded writes, compacts the source and gathers the index-wide lists.
    case StepOp::kSnapshot:
    case StepOp::kMoveBegin:
    case StepOp::kMoveCommit:
      return snapshot_timeout_;
    // A move chunk is serve.move_chunk_bytes over MPI: sized to fit a step's deadline.
    default:
      return step_timeout_;
  }
}

void Watchdog::begin(const StepHeader& h) {
  if (failing_.load()) {
    for (;;) pause();  // the failing thread ends the process
  }
  std::lock_guard<std::mutex> lock(mu_);
  in_flight_ = true;
  step_ = h;
  started_ = Clock::now();
}

void Watchdog::end() {
  std::lock_guard<std::mutex> lock(mu_);
  in_flight_ = false;
}

void Watchdog::run() {
  std::unique_lock<std::mutex> lock(mu_);
  for (int64_t poll = 0; !stopping_; ++poll) {
    cv_.wait_for(lock, kPollInterval);
    if (stopping_) break;
    std::string why;
    if (in_flight_) {
      const double ms = ms_since(started_);
      const auto deadline = deadline_of(step_);
      if (ms > double(deadline.count())) {
        why = describe(step_) + " did not finish within " + std::to_string(deadline.count()) +
              " ms on rank " + std::to_string(rank_);
      } else if (shutdown_requested_ && shutdown_requested_() &&
                 ms > double(abort_grace_.count()) / 2) {
        why = "the job is being stopped (SIGTERM) while " + describe(step_) +
              " has been in flight for " + std::to_string(int64_t(ms)) + " ms on rank " +
              std::to_string(rank_);
      } else if (lost_peers_ && ms > kProbePeersAfterMs && poll % kProbeEveryPolls == 0) {
        const StepHeader step = step_;
        lock.unlock();
        const std::string lost = lost_peers_();  // reads /proc: outside mu_
        lock.lock();
        if (!lost.empty())
          why = describe(step) + " cannot finish on rank " + std::to_string(rank_) + ": " + lost;
      }
    }
    if (why.empty()) {
      lock.unlock();
      const std::string async = data_.async_error();  // outside mu_: it may take a while
      lock.lock();
      if (!async.empty())
        why = data_.backend() + " communicator error on rank " + std::to_string(rank_) + ": " +
              async;
    }
    if (!why.empty()) {
      lock.unlock();
      fail(why);
    }
  }
}

void Watchdog::fail(const std::string& why) {
  if (failing_.exchange(true)) {
    for (;;) pause();  // another thread is failing the rank and ends the process
  }
  const auto start = Clock::now();
  ARGENT_LOG(kCritical, "watchdog: ", why, "; aborting rank ", rank_);
  std::fprintf(stderr, "argent: rank %d: cluster failure: %s\n", rank_, why.c_str());
  try {
    if (on_failure_) on_failure_(why);
  } catch (const std::exception& e) {
    ARGENT_LOG(kError, "watchdog: answering clients failed: ", e.what());
  }
  // The abort gets what is left of the grace; a hung ncclCommAbort is abandoned at its end.
  auto done = std::make_shared<std::atomic<bool>>(false);
  std::thread([this, done] {
    data_.abort();
    done->store(true);
  }).detach();
  const auto give_up = start + abort_grace_;
  while (!done->load() && Clock::now() < give_up) std::this_thread::sleep_for(kPollInterval / 5);
  if (!done->load())
    ARGENT_LOG(kCritical, "watchdog: the communicator abort did not finish within ",
               abort_grace_.count(), " ms; exiting anyway");
  std::fflush(nullptr);
  _exit(kWatchdogExitStatus);
}

}  // namespace argent
