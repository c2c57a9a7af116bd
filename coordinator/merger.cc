#include "coordinator/merger.h"

#include <unordered_set>

#include "common/error.h"
#include "common/log.h"
#include "coordinator/merge.h"
#include "coordinator/rerank_step.h"
#include "coordinator/step_protocol.h"

namespace argent {
namespace {

double ms_between(SteadyClock::time_point a, SteadyClock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

}  // namespace

v1::Response search_status(const PendingSearch& r, v1::StatusCode code, const std::string& msg) {
  v1::Response out;
  v1::SearchResponse* s = out.mutable_search();
  s->set_request_id(r.request_id);
  s->mutable_status()->set_code(code);
  s->mutable_status()->set_message(msg);
  return out;
}

Merger::Merger(zmq::context_t& context, ServerStats& stats, int ranks, const RerankSetup* rerank,
               InFlightBoard* board)
    : context_(context),
      stats_(stats),
      ranks_(ranks),
      rerank_(rerank),
      board_(board),
      thread_([this] { run(); }) {}

void Merger::push(MergeJob job) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    jobs_.push_back(std::move(job));
  }
  cv_.notify_one();
}

void Merger::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_one();
  if (thread_.joinable()) thread_.join();
}

void Merger::run() {
  Replier replier(context_);
  for (;;) {
    MergeJob job;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
      if (jobs_.empty()) return;  // stopping, and every job is answered
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    answer(job, replier);
  }
}

void Merger::answer(const MergeJob& job, Replier& replier) {
  if (board_ && job.token != 0 && !board_->release(job.token)) return;  // a failure answered them
  const int64_t n = int64_t(job.requests.size()), k = job.k;
  const size_t block_bytes = shard_block_bytes(n, k, job.code_dims);
  std::vector<ShardBlockView> blocks;
  for (int r = 0; r < ranks_; ++r)
    blocks.push_back(shard_block(job.blocks.data() + size_t(r) * block_bytes, n, k, job.code_dims));
  const bool reranking = rerank_ != nullptr && job.code_dims > 0;
  for (const ShardBlockView& b : blocks)
    stats_.record_rank_step(b.header->rank, double(b.header->search_ms));

  // Merge every live query: its top k, or with the reranker its top max(k, depth) candidates.
  const auto now = SteadyClock::now();
  std::vector<MergedResult> merged(static_cast<size_t>(n));
  std::vector<RerankQuery> to_rerank;
  std::vector<int64_t> live;
  for (int64_t q = 0; q < n; ++q) {
    const PendingSearch& req = job.requests[size_t(q)];
    if (now > req.deadline) {
      stats_.record_deadline_exceeded();
      replier.send(req.envelope,
                   search_status(req, v1::DEADLINE_EXCEEDED,
                                 "deadline passed while the request was searched"),
                   req.arrival);
      continue;
    }
    std::vector<const float*> scores;
    std::vector<const int64_t*> ids;
    for (const ShardBlockView& b : blocks) {
      scores.push_back(b.scores + q * k);
      ids.push_back(b.ids + q * k);
    }
    const std::unordered_set<int64_t> excluded(req.exclude_ids.begin(), req.exclude_ids.end());
    const int64_t depth = reranking ? std::max(req.k, req.rerank_depth) : req.k;
    merged[size_t(q)] = merge_query(scores, ids, k, depth, excluded);
    live.push_back(q);
    if (reranking) {
      RerankQuery rq;
      rq.candidates = &merged[size_t(q)];
      rq.block_row = q;
      rq.user = req.embedding.data();
      rq.task_weights = req.task_weights.empty() ? rerank_->defaults.task : req.task_weights;
      rq.k = req.k;
      to_rerank.push_back(std::move(rq));
    }
  }

  std::vector<RerankedResult> reranked;
  if (reranking && !to_rerank.empty()) {
    try {
      reranked = rerank_step(*rerank_->reranker, rerank_->defaults.retrieval, to_rerank, blocks, k,
                             rerank_->dim, job.code_dims, rerank_->normalize);
    } catch (const std::exception& e) {
      // A failed rerank (e.g. out of device memory) fails this batch, not the server.
      ARGENT_LOG(kError, "rerank: ", e.what());
      for (int64_t q : live)
        replier.send(job.requests[size_t(q)].envelope,
                     search_status(job.requests[size_t(q)], v1::INTERNAL,
                                   std::string("rerank failed: ") + e.what()),
                     job.requests[size_t(q)].arrival);
      return;
    }
  }

  for (size_t i = 0; i < live.size(); ++i) {
    const PendingSearch& req = job.requests[size_t(live[i])];
    v1::Response out;
    v1::SearchResponse* s = out.mutable_search();
    s->set_request_id(req.request_id);
    s->mutable_status()->set_code(v1::OK);
    if (reranking) {
      const RerankedResult& r = reranked[i];
      s->mutable_ids()->Add(r.ids.begin(), r.ids.end());
      s->mutable_scores()->Add(r.retrieval_scores.begin(), r.retrieval_scores.end());
      s->mutable_values()->Add(r.values.begin(), r.values.end());
      for (size_t t = 0; t < r.task_scores.size(); ++t) {
        v1::TaskScores* ts = s->add_task_scores();
        ts->set_task(rerank_->reranker->tasks()[t]);
        ts->mutable_scores()->Add(r.task_scores[t].begin(), r.task_scores[t].end());
      }
    } else {
      const MergedResult& m = merged[size_t(live[i])];
      s->mutable_ids()->Add(m.ids.begin(), m.ids.end());
      s->mutable_scores()->Add(m.scores.begin(), m.scores.end());
    }
    for (const ShardBlockView& b : blocks) {
      v1::ShardTiming* t = s->add_shard_timings();
      t->set_rank(b.header->rank);
      t->set_search_ms(b.header->search_ms);
      t->set_items(b.header->items);
    }
    s->set_queue_ms(float(ms_between(req.arrival, job.dispatched)));
    const double server_ms = ms_between(req.arrival, SteadyClock::now());
    s->set_server_ms(float(server_ms));
    s->set_batch_size(int32_t(n));
    replier.send(req.envelope, out, req.arrival);
    stats_.record_answer(server_ms);
  }
}

}  // namespace argent
