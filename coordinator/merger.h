// The coordinator's merge thread: takes gathered search steps from the step loop, merges each
// query's ranks into its global top-k (and, with a reranker, reranks the top-depth by blended
// value), and replies, while the step loop already broadcasts the next step.
#pragma once

#include <zmq.hpp>

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "argent/v1/service.pb.h"
#include "coordinator/inflight_board.h"
#include "coordinator/replier.h"
#include "coordinator/request_queue.h"
#include "coordinator/reranker.h"
#include "coordinator/server_stats.h"
#include "coordinator/value_model.h"

namespace argent {

// A gathered step on its way from the step loop to the merge thread.
struct MergeJob {
  std::vector<PendingSearch> requests;
  std::vector<uint8_t> blocks;  // ranks x shard_block_bytes(n, k, code_dims)
  int64_t k = 0;
  int32_t code_dims = 0;  // d_pad when the blocks carry codes for the reranker
  SteadyClock::time_point dispatched;
  uint64_t token = 0;  // the requests' entry on the InFlightBoard (0: none)
};

// What the merge thread needs to rerank; absent when rerank.enabled is false.
struct RerankSetup {
  std::unique_ptr<Reranker> reranker;
  ValueWeights defaults;
  int dim = 0;
  bool normalize = true;
};

// A reply carrying `code` and `message` for request `r`.
v1::Response search_status(const PendingSearch& r, v1::StatusCode code, const std::string& message);

class Merger {
 public:
  // `rerank` may be null (no reranker). `board` (may be null) tracks each job's requests until
  // the merger takes them over (release) to answer them. Starts the thread.
  Merger(zmq::context_t& context, ServerStats& stats, int ranks, const RerankSetup* rerank,
         InFlightBoard* board = nullptr);
  ~Merger() { stop(); }

  void push(MergeJob job);
  // Answers every job pushed so far, then joins the thread.
  void stop();

 private:
  void run();
  void answer(const MergeJob& job, Replier& replier);

  zmq::context_t& context_;
  ServerStats& stats_;
  int ranks_;
  const RerankSetup* rerank_;
  InFlightBoard* board_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<MergeJob> jobs_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace argent
