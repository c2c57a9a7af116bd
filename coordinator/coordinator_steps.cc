#include "coordinator/coordinator_steps.h"

#include <algorithm>
#include <chrono>
#include <cstring>

#include "common/error.h"
#include "coordinator/metrics.h"

namespace argent {

StepHeader start_step(MpiCommunicator& control, Watchdog* watchdog, uint64_t& step_id, StepOp op,
                      int64_t payload, uint64_t batch, int64_t n, int64_t k) {
  StepHeader h;
  h.op = int32_t(op);
  h.step = ++step_id;
  h.payload_bytes = payload;
  h.batch = batch;
  h.n = n;
  h.k = k;
  if (watchdog) watchdog->begin(h);
  control.broadcast(&h, sizeof(h), 0);
  return h;
}

void run_search_step(const SearchStepContext& ctx, std::vector<PendingSearch> batch) {
  const IndexMeta& meta = ctx.meta;
  // Requests whose deadline already passed are answered now, not searched.
  const auto now = SteadyClock::now();
  std::vector<PendingSearch> live;
  for (PendingSearch& r : batch) {
    if (now > r.deadline) {
      ctx.stats.record_deadline_exceeded();
      ctx.replier.send(r.envelope, search_status(r, v1::DEADLINE_EXCEEDED,
                                                 "deadline passed while the request was queued"),
                       r.arrival);
    } else {
      live.push_back(std::move(r));
    }
  }
  if (live.empty()) return;
  ctx.stats.record_batch(int64_t(live.size()));

  SearchStep step;
  try {
    const int64_t n = int64_t(live.size());
    std::vector<float> x(size_t(n * meta.dim));
    std::vector<std::string> filters;
    for (int64_t q = 0; q < n; ++q) {
      const PendingSearch& r = live[size_t(q)];
      std::copy(r.embedding.begin(), r.embedding.end(), x.begin() + q * meta.dim);
      filters.push_back(r.filter);
      // With the reranker, a query needs its top max(k, depth) candidates after exclusions
      // (validate_search counts them).
      step.k = std::max<int64_t>(step.k, r.candidates);
    }
    step.queries = prepare_queries(x.data(), n, meta.dim, meta, filters);
    step.nprobe = live.front().exact ? 0 : live.front().nprobe;
    step.with_codes = ctx.rerank != nullptr;
    if (step.nprobe > 0)
      step.lists = ctx.prober.probe(step.queries, step.nprobe, ctx.lists.sizes.data(),
                                    ctx.lists.summaries.data());
  } catch (const Error& e) {
    // Requests were validated one by one; a batch that still fails is answered, not fatal.
    for (const PendingSearch& r : live)
      ctx.replier.send(r.envelope, search_status(r, v1::INTERNAL, e.what()), r.arrival);
    return;
  }
  // From here until the merger takes them, a cluster failure answers them (UNAVAILABLE).
  const uint64_t token = ctx.board.track_all(live, ctx.replier);
  std::vector<uint8_t> payload = encode_search_step(step);
  const StepHeader h = start_step(ctx.control, &ctx.watchdog, ctx.step_id, StepOp::kSearch,
                                  int64_t(payload.size()), ++ctx.batch_id, step.queries.n, step.k);
  ctx.data.broadcast_host(payload.data(), payload.size(), 0);
  std::vector<uint8_t> block = ctx.worker.search(step);
  stamp_shard_block(block, h);

  MergeJob job;
  job.k = step.k;
  job.code_dims = step.with_codes ? meta.d_pad : 0;
  job.dispatched = now;
  job.blocks.resize(block.size() * size_t(ctx.data.size()));
  const auto gather_start = SteadyClock::now();
  ctx.data.all_gather_host(block.data(), job.blocks.data(), block.size());
  metrics().observe_all_gather(
      std::chrono::duration<double>(SteadyClock::now() - gather_start).count());
  ctx.watchdog.end();
  // Every rank must have answered this step, this batch, with these sizes.
  for (int r = 0; r < ctx.data.size(); ++r) {
    ShardBlockHeader b;
    std::memcpy(&b, job.blocks.data() + size_t(r) * block.size(), sizeof b);
    const std::string mismatch = shard_block_mismatch(b, r, h);
    if (!mismatch.empty()) ctx.watchdog.fail(mismatch);
  }
  job.requests = std::move(live);
  job.token = token;
  ctx.merger.push(std::move(job));
}

}  // namespace argent
