// The watchdog of one serving rank (docs/reliability.md, "Cluster faults"): a thread that watches
// the step in flight and the communicator, so that no failure leaves a rank waiting forever.
//
// It fails the rank when
//   - the step in flight passes its deadline (deadline_of: serve.step_timeout_ms; snapshot
//     steps and the begin and commit steps of a partition move serve.snapshot_timeout_ms; on
//     ranks other than 0 plus serve.abort_grace_ms, so that the coordinator, which answers the
//     clients, is the first to notice),
//   - the communicator reports an asynchronous error (NCCL: ncclCommGetAsyncError),
//   - a peer is known to be gone (rank 0: a rank on its host has exited) while a step has
//     been in flight for more than kProbePeersAfter,
//   - the job is being stopped (SIGTERM, e.g. from mpirun after another rank died) while a step
//     has been in flight for longer than half of serve.abort_grace_ms: a step whose ranks are
//     all alive finishes in far less;
// and the rank's thread may fail it itself (fail(), e.g. on a checked step mismatch).
//
// Failing runs `on_failure` once (rank 0 answers every in-flight and queued request UNAVAILABLE
// there), aborts the communicator on a helper thread bounded by serve.abort_grace_ms
// (ncclCommAbort may itself hang on a broken fabric), and ends the process with _exit: no
// destructor, no MPI_Finalize, nothing that could wait on a dead peer. mpirun then ends the
// other ranks, and the process exit releases the GPU's memory.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "collectives/communicator.h"
#include "common/config.h"
#include "coordinator/step_protocol.h"

namespace argent {

// The exit status of a rank the watchdog ended (EX_TEMPFAIL: a supervisor should restart).
constexpr int kWatchdogExitStatus = 75;

class Watchdog {
 public:
  using Clock = std::chrono::steady_clock;
  // Called once with the failure's description; must return within serve.abort_grace_ms.
  using FailureHandler = std::function<void(const std::string& why)>;

  // `shutdown_requested` tells whether the job is being stopped (a SIGTERM flag). `lost_peers`
  // (may be null) names peers known to be gone ("" when none): asked while a step is slow, so a
  // dead rank fails the step at once rather than at its deadline. Starts the thread. `data`
  // must outlive the watchdog.
  Watchdog(Communicator& data, int rank, const ServeConfig& config,
           std::function<bool()> shutdown_requested, FailureHandler on_failure,
           std::function<std::string()> lost_peers = nullptr);
  ~Watchdog();
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  // The rank's thread: step `h` has started / has finished on this rank. A begin() after the
  // watchdog failed does not return (the process is about to exit).
  void begin(const StepHeader& h);
  void end();

  // Milliseconds since the last begin() (or since construction): an idle coordinator sends a
  // heartbeat step when this passes serve.heartbeat_ms.
  double ms_since_last_step();

  // Fails the rank now (any thread); does not return.
  [[noreturn]] void fail(const std::string& why);

  // The deadline a step with header `h` gets on this rank.
  std::chrono::milliseconds deadline_of(const StepHeader& h) const;

 private:
  void run();

  Communicator& data_;
  const int rank_;
  const std::chrono::milliseconds step_timeout_, snapshot_timeout_, abort_grace_;
  std::function<bool()> shutdown_requested_;
  FailureHandler on_failure_;
  std::function<std::string()> lost_peers_;

  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;        // GUARDED_BY(mu_)
  bool in_flight_ = false;       // GUARDED_BY(mu_)
  StepHeader step_;              // GUARDED_BY(mu_): the step in flight
  Clock::time_point started_;    // GUARDED_BY(mu_): of the step in flight, or the last one
  std::atomic<bool> failing_{false};
  std::thread thread_;
};

}  // namespace argent
