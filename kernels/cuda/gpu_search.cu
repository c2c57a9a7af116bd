// run_gpu_search: the sequence of steps in kernels/cuda/gpu_search.h, its buffer sizes, and the
// rescue of the rare query whose sampled threshold missed.
#include "kernels/cuda/gpu_search.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "common/cuda_check.h"
#include "kernels/cuda/device_array.h"
#include "kernels/cuda/filter_cache.h"
#include "kernels/cuda/search_steps.h"
#include "kernels/layout.h"

namespace argent {

struct GpuSearchWorkspace::Buffers {
  DeviceArray probes, probe_keys, n_bad_probes;
  DeviceArray list_count, list_fill, list_start, list_queries, tasks, n_tasks, cub_temp;
  DeviceArray sample_scores, sample_count, thresholds;
  DeviceArray cand_scores, cand_rows, cand_count, cand_keys, cand_fill, cand_dropped,
      flat_segments;
  DeviceArray keys0, keys1, values0, values1, sort_temp;
  DeviceArray rescue, n_rescue, block_plans, plan_rows, pair_rows;
  // The one-query probed lists' pass's counts and its sample's count, zeroed together (by the
  // probe's select, or a memset before caller probes are checked).
  DeviceArray probed_rows;
  std::unique_ptr<GpuSearchWorkspace> rescue_workspace;

  size_t bytes() const {
    size_t b = 0;
    for (const DeviceArray* a :
         {&probes, &probe_keys, &n_bad_probes, &list_count, &list_fill, &list_start,
          &list_queries, &tasks, &n_tasks, &cub_temp, &sample_scores, &sample_count,
          &thresholds, &cand_scores, &cand_rows, &cand_count, &cand_keys, &cand_fill,
          &cand_dropped, &flat_segments, &keys0, &keys1, &values0, &values1, &sort_temp,
          &rescue, &n_rescue, &block_plans, &plan_rows, &pair_rows, &probed_rows})
      b += a->bytes();
    return b;
  }
};

GpuSearchWorkspace::GpuSearchWorkspace() : buffers_(std::make_unique<Buffers>()) {}
GpuSearchWorkspace::~GpuSearchWorkspace() = default;

namespace {

// ARGENT_GPU_PROFILE=1 prints each step's time (CUDA events) to stderr: for tuning only, it
// adds a synchronisation at the end of every batch.
class StepTimer {
 public:
  explicit StepTimer(cudaStream_t stream) : stream_(stream) {
    const char* env = std::getenv("ARGENT_GPU_PROFILE");
    on_ = env && *env == '1';
    if (on_) mark("start");
  }
  void mark(const char* name) {
    if (!on_) return;
    cudaEvent_t e;
    ARGENT_CUDA_CHECK(cudaEventCreate(&e));
    ARGENT_CUDA_CHECK(cudaEventRecord(e, stream_));
    events_.push_back({name, e});
  }
  bool on() const { return on_; }
  // Printed after the steps' times (" name value").
  void note(const char* name, double value) {
    notes_ += " " + std::string(name) + " " + std::to_string(value);
  }
  ~StepTimer() {
    if (!on_ || events_.empty()) return;
    cudaEventSynchronize(events_.back().second);
    std::string line = "gpu_search steps (ms):";
    for (size_t i = 1; i < events_.size(); ++i) {
      float ms = 0;
      cudaEventElapsedTime(&ms, events_[i - 1].second, events_[i].second);
      line += " " + std::string(events_[i].first) + " " + std::to_string(ms);
    }
    line += notes_;
    for (auto& e : events_) cudaEventDestroy(e.second);
    std::fprintf(stderr, "%s\n", line.c_str());
  }

 private:
  cudaStream_t stream_;
  bool on_ = false;
  std::vector<std::pair<const char*, cudaEvent_t>> events_;
  std::string notes_;
};

// The bytes of codes in the batch's tasks (profiling only: it synchronises): what a collect
// reads when each list's queries are staged at once and no block is skipped by a filter.
double task_code_bytes(const GpuIndexView& index, const int32_t* tasks, const int32_t* n_tasks,
                       cudaStream_t stream) {
  int32_t n = 0;
  ARGENT_CUDA_CHECK(cudaMemcpyAsync(&n, n_tasks, sizeof(n), cudaMemcpyDeviceToHost, stream));
  ARGENT_CUDA_CHECK(cudaStreamSynchronize(stream));
  std::vector<int32_t> chunks(static_cast<size_t>(n)), blocks(static_cast<size_t>(index.n_chunks));
  ARGENT_CUDA_CHECK(cudaMemcpyAsync(chunks.data(), tasks, sizeof(int32_t) * chunks.size(),
                                    cudaMemcpyDeviceToHost, stream));
  ARGENT_CUDA_CHECK(cudaMemcpyAsync(blocks.data(), index.chunk_blocks,
                                    sizeof(int32_t) * blocks.size(), cudaMemcpyDeviceToHost,
                                    stream));
  ARGENT_CUDA_CHECK(cudaStreamSynchronize(stream));
  double total = 0;
  for (int32_t c : chunks) total += blocks[size_t(c)];
  return total * kBlockRows * index.scan.d_pad;
}

// The per-pair pre-pass words take n * nprobe * (blocks of the longest list) words; beyond this
// the scan evaluates each pair's plan itself (slower, but no extra memory): 80M items in 8.9k
// lists of up to ~56k rows take 29 MiB at B = 64, nprobe 32.
constexpr int64_t kMaxPairWordBytes = int64_t(512) << 20;

// Blocks of 16 rows of the index's longest list.
int64_t longest_list_blocks(const GpuIndexView& index) {
  return (index.max_list_rows + kBlockRows - 1) / kBlockRows;
}

int64_t pow2_floor(int64_t x) {
  int64_t p = 1;
  while (p * 2 <= x) p *= 2;
  return p;
}

// How the sample is drawn and how much room the candidates get.
struct SamplePlan {
  int64_t stride;       // one block in `stride` is sampled
  int64_t rank;         // T_q = the rank-th best sample score
  int64_t cap;          // candidate slots per query
  int64_t sample_cap;   // sample slots per query
  int64_t typical_sample;  // sampled rows of a query that scans lists of mean size
  // Flat candidates (cuda::flat_candidates): slots for the whole batch, of which flat_slack
  // are for the warps' unfinished reservations.
  bool flat;
  int64_t flat_slots;
  int64_t flat_slack;
};

SamplePlan plan_sample(const GpuIndexView& index, const GpuSearchOptions& o, int64_t n,
                       int nprobe) {
  const ScanIndexView& s = index.scan;
  const int64_t n_blocks = s.n_rows / kBlockRows;
  const int64_t lists = o.exact ? s.n_lists : std::min<int64_t>(nprobe, s.n_lists);
  const int64_t space_blocks =
      o.exact ? n_blocks : std::min(n_blocks, lists * longest_list_blocks(index));
  // Rows a query typically scans: all of them, or nprobe lists of mean size.
  const int64_t typical_rows =
      o.exact ? s.n_rows : std::max<int64_t>(1, s.n_rows / std::max<int64_t>(1, s.n_lists)) * lists;
  SamplePlan p;
  if (o.sample_stride > 0) {
    p.stride = o.sample_stride;
  } else {
    // About 4 k rows per sampled row: the threshold's rank stays above ~8 while the sample
    // pass costs a small fraction of the scan; at most ~256k sampled rows per query. No sparser
    // than one block in 1024: exact search at 80M with 2048 or 4096 saved up to 0.06 ms of
    // sample and threshold and lost more in the collect and sort of ~2-3x the candidates (H100,
    // B = 64 4.89-5.15 ms -> 4.91-5.23 / 5.17-5.54; B = 256 11.9-12.2 -> 14.1-15.0 / 15.5-15.7).
    p.stride = std::clamp<int64_t>(pow2_floor(std::max<int64_t>(1, typical_rows / (4 * o.k))), 1,
                                   1024);
    while (p.stride < 1024 && typical_rows / p.stride > (int64_t(1) << 18)) p.stride *= 2;
  }
  if (p.stride == 1) {
    // The sample is everything: T_q is the exact k-th eligible score.
    p.rank = o.k;
    p.cap = o.k + 1024;
  } else {
    // E[rows scoring >= the rank-th sample score] = rank * stride. Rows of a sampled block are
    // alike (a list holds one cluster), so the sample behaves like fewer, heavier draws: the
    // margins assume ~4 correlated rows per draw. Fewer than k such rows, or more than cap, is
    // then rare, and caught and rescued exactly.
    const double mu = double(o.k) / double(p.stride);
    p.rank = int64_t(std::ceil(mu + 8.0 * std::sqrt(mu) + 4.0));
    const double r = double(p.rank);
    p.cap = int64_t(std::ceil((r + 12.0 * std::sqrt(r) + 16.0) * double(p.stride))) + 64;
  }
  p.cap = std::min<int64_t>((p.cap + 31) / 32 * 32, std::max<int64_t>(32, space_blocks * kBlockRows));
  p.cap = std::max<int64_t>(p.cap, std::min<int64_t>(o.k, space_blocks * kBlockRows));
  if (o.candidate_cap > 0) p.cap = std::max(o.candidate_cap, o.k);
  // The sampled blocks are the multiples of the stride, and a query reads a block at most once.
  p.sample_cap = std::min({space_blocks, space_blocks / p.stride + lists,
                           (n_blocks + p.stride - 1) / p.stride}) *
                 kBlockRows;
  p.typical_sample = (typical_rows + p.stride - 1) / p.stride;
  p.flat = cuda::flat_candidates(p.cap);
  p.flat_slots = n * p.cap;
  p.flat_slack = 0;
  if (p.flat && p.stride > 1 && o.candidate_cap == 0) {
    // The queries share their slots: a query's count varies by ~sqrt(rank) sample draws, the
    // batch's total relatively sqrt(n) times less, so the pool needs a smaller margin than n
    // buffers of cap (K = 100,000, B = 64: 11.6M slots against 17.6M, and a smaller sort).
    const double r = double(p.rank), nn = double(n);
    const int64_t pooled =
        int64_t(std::ceil((nn * (r + 16.0) + 12.0 * std::sqrt(nn * r)) * double(p.stride))) +
        64 * n;
    p.flat_slots = std::min(p.flat_slots, pooled);
    p.flat_slack = p.flat_slots / 8;
    p.flat_slots += p.flat_slack;
  }
  return p;
}

}  // namespace

namespace {

// run_gpu_probe, whose select also zeroes clear[0, clear_words) and whose launch may carry
// the plans (cuda::launch_probe).
void probe_and_clear(const GpuIndexView& index, const GpuQueriesView& queries, int nprobe,
                     int32_t* lists, GpuSearchWorkspace& workspace, cudaStream_t stream,
                     uint32_t* clear, int clear_words, const cuda::CarriedPlans* carried) {
  auto& b = workspace.buffers();
  float* keys = static_cast<float*>(
      b.probe_keys.reserve(size_t(queries.n) * size_t(index.scan.n_lists) * sizeof(uint64_t)));
  cuda::launch_probe(index, queries, nprobe, keys, lists, stream, clear, clear_words, carried);
}

// Whether the probe's launch is to carry the unsent plans: a one-query batch that probes on
// the GPU, whose plans fit. Otherwise they are copied before anything reads them.
bool carry_plans(const GpuSearchOptions& o, int64_t n, cuda::CarriedPlans* c) {
  const UnsentPlans* u = o.unsent_plans;
  if (!u || o.exact || o.probes || n != 1 || u->bytes > kMaxCarriedPlanBytes) return false;
  std::memcpy(c->bytes, u->host, u->bytes);
  c->device = static_cast<unsigned char*>(u->device);
  c->n_bytes = uint32_t(u->bytes);
  c->plan = u->first_query_plan;
  c->ops_offset = uint32_t(u->first_query_ops_offset);
  c->n_ops = u->first_query_ops;
  return true;
}

}  // namespace

void run_gpu_probe(const GpuIndexView& index, const GpuQueriesView& queries, int nprobe,
                   int32_t* lists, GpuSearchWorkspace& workspace, cudaStream_t stream) {
  probe_and_clear(index, queries, nprobe, lists, workspace, stream, nullptr, 0, nullptr);
}

void run_gpu_search(const GpuIndexView& index, const GpuQueriesView& queries,
                    const GpuSearchOptions& o, float* scores, int64_t* ids, int64_t* rows,
                    GpuSearchWorkspace& workspace, GpuSearchStats* stats, cudaStream_t stream) {
  ARGENT_CHECK(o.k >= 1 && o.k <= 1000000, "GPU search: k ", o.k, " outside [1, 1000000]");
  ARGENT_CHECK(queries.n >= 1 && queries.n <= 65535, "GPU search: batch of ", queries.n,
               " queries outside [1, 65535]");
  ARGENT_CHECK(o.exact || o.nprobe >= 1, "GPU search: nprobe ", o.nprobe, " must be >= 1");
  const int64_t n = queries.n, n_lists = index.scan.n_lists;
  auto& b = workspace.buffers();
  StepTimer timer(stream);

  // A caller's probes keep their width (entries past the lists are -1 pads).
  const int nprobe = o.exact ? 0 : o.probes ? o.nprobe : int(std::min<int64_t>(o.nprobe, n_lists));

  // The plans the caller left on the host (UnsentPlans): carried by the probe's launch, or
  // copied now. The GPU is idle until a batch's first launch, so every host call ahead of the
  // probe delays the whole batch: the plans' pageable copy took the host 2.8-2.9 us and then
  // the copy engine's turn, and the probed lists' counters' memset more. Without both, a
  // one-query IVF batch under a 10 % filter went from 0.0036 ms behind unfiltered to
  // 0.0005-0.0013 (H100, K = 1000, nprobe 32, mean of 64 queries; docs/benchmarks.md).
  cuda::CarriedPlans carried;
  const bool plans_carried = carry_plans(o, n, &carried);
  if (o.unsent_plans && !plans_carried && o.unsent_plans->bytes > 0)
    ARGENT_CUDA_CHECK(cudaMemcpyAsync(o.unsent_plans->device, o.unsent_plans->host,
                                      o.unsent_plans->bytes, cudaMemcpyHostToDevice, stream));

  const bool few_plans =
      queries.plan_of_query && queries.n_plans >= 1 && queries.n_plans <= cuda::kMaxBlockPlans;
  // A one-query IVF batch under few plans takes the probed lists' pass unless the filter cache
  // holds its words; with those words, or without a filter, it takes the probed sample pass
  // (below). The pass's counts [n_plans + 1], then its sample's count and its threshold's
  // counter, are zeroed by the probe's select on its way, not by a memset ahead of the probe.
  const bool one_ivf_query = !o.exact && n == 1 && nprobe >= 1 && nprobe <= cuda::kMaxProbedSlots;
  const bool one_filtered_ivf_query = one_ivf_query && few_plans;
  const bool one_unfiltered_ivf_query = one_ivf_query && !queries.plan_of_query;
  unsigned long long* probed_rows = nullptr;
  int probed_count_words = 0;
  if (one_filtered_ivf_query || one_unfiltered_ivf_query) {
    const size_t bytes =
        sizeof(unsigned long long) * size_t(queries.n_plans + 1) + 2 * sizeof(uint32_t);
    probed_rows = static_cast<unsigned long long*>(b.probed_rows.reserve(bytes));
    probed_count_words = int(bytes / sizeof(uint32_t));
  }

  // Probe, first: the host's other set-up of the batch (the filter cache's lookup among it)
  // then runs while the GPU probes.
  const int32_t* probes = o.probes;
  int32_t* n_bad_probes = nullptr;
  if (!o.exact && probes) {
    // Checked on the device and refused at the batch's one synchronisation below, so probes
    // from argent::probe or the caller cost no host round trip.
    int32_t* p = b.probes.reserve_as<int32_t>(size_t(n) * nprobe);
    n_bad_probes = b.n_bad_probes.reserve_as<int32_t>(1);
    if (probed_rows)
      ARGENT_CUDA_CHECK(
          cudaMemsetAsync(probed_rows, 0, sizeof(uint32_t) * probed_count_words, stream));
    cuda::launch_check_probes(probes, n, nprobe, n_lists, p, n_bad_probes, stream);
    probes = p;
    timer.mark("check probes");
  } else if (!o.exact) {
    int32_t* p = b.probes.reserve_as<int32_t>(size_t(n) * nprobe);
    probe_and_clear(index, queries, nprobe, p, workspace, stream,
                    reinterpret_cast<uint32_t*>(probed_rows), probed_count_words,
                    plans_carried ? &carried : nullptr);
    probes = p;
    timer.mark("probe");
  }

  // Filter words: from the filter cache, exact for every row, when it serves the batch's plans.
  const uint32_t* block_plans = nullptr;
  const unsigned long long* plan_rows = nullptr;
  const bool words_from_cache =
      few_plans && o.filter_cache && o.host_plan_ops &&
      o.filter_cache->lookup(index, o.host_plan_ops, o.host_plan_begin, o.host_plan_len,
                             queries.n_plans, stream, &block_plans, &plan_rows,
                             o.filter_cache_peek);
  if (words_from_cache) timer.mark("cached plans");
  // A one-query IVF batch under a filter the cache does not hold: one pass over its probed
  // lists' rows (cuda::launch_probed_list_plans) gives their exact words, draws the sample and
  // inverts, in place of the inversion and the sample pass. (H100, B = 1, K = 1000, nprobe 32,
  // search ms, same process; unfiltered 0.147-0.159. A 10 % filter: 0.168-0.170 with the words'
  // pass beside the inversion on a second stream, forked and joined by events, and the sample
  // by the scan; 0.150-0.151 with that pass drawing the sample; 0.149-0.158 with one pass on
  // one stream. A 1 % filter: 0.159-0.161, 0.143-0.145, 0.141-0.142.)
  const bool probed_list_plans = one_filtered_ivf_query && !words_from_cache;
  // A one-query IVF batch whose words the cache holds, or that has no filter: its sample and
  // inversion from one pass over its probed lists' sampled blocks (cuda::launch_probed_sample),
  // in place of the inversion's launch and the scan's sample pass, whose CTAs each staged their
  // list's query and plan to read one or two sampled blocks (H100, K = 1000, nprobe 32, mean of
  // 256 queries: unfiltered 0.138 -> 0.127-0.128 ms, a cached 10 % filter 0.139-0.144 ->
  // 0.124-0.127; the two steps 0.025 -> 0.009 ms). Filters new to the cache keep the probed
  // lists' pass, whose words the collect needs: the collect evaluating its hits' Bloom plans
  // instead measured 0.055-0.077 ms slower (docs/benchmarks.md).
  const bool probed_sample =
      (one_filtered_ivf_query && words_from_cache) || one_unfiltered_ivf_query;
  const SamplePlan plan = plan_sample(index, o, n, nprobe);
  float* sample_scores = b.sample_scores.reserve_as<float>(size_t(n * plan.sample_cap));
  uint32_t* sample_count = nullptr;  // [n]
  uint32_t* probed_words = nullptr;
  if (probed_list_plans) {
    probed_words = b.block_plans.reserve_as<uint32_t>(size_t(queries.n_plans) *
                                                      size_t(index.scan.n_rows / kBlockRows));
    block_plans = probed_words;
    plan_rows = probed_rows;
  }
  if (probed_list_plans || probed_sample) {
    sample_count = reinterpret_cast<uint32_t*>(probed_rows + queries.n_plans + 1);
  } else {
    sample_count = b.sample_count.reserve_as<uint32_t>(n);
  }

  float* thresholds = b.thresholds.reserve_as<float>(n);
  // The probed lists' pass selects the threshold itself where a sample is typically small enough
  // for the one CTA that selects (cuda::PassThreshold): there the select runs while the rest of
  // the pass writes the words (H100, 256 queries, the pass and the threshold: 10 % 0.0183 +
  // 0.0077 -> 0.0226 ms, 1 % 0.0176 + 0.0047 -> 0.0181, NOT 0.0250 + 0.0084 -> 0.0317).
  const bool threshold_in_pass =
      probed_list_plans && plan.typical_sample <= cuda::kMaxPassThresholdSample;

  // Invert to list-major work.
  const int64_t width = o.exact ? n_lists : nprobe;
  // The inversion's offsets are int32: n * width (query, list) pairs must fit.
  ARGENT_CHECK(n * width + n < (int64_t(1) << 31), "GPU search: ", n, " queries x ", width,
               " lists are too many (query, list) pairs for one batch; send smaller batches");
  cuda::InvertBuffers inv;
  inv.list_count = b.list_count.reserve_as<int32_t>(n_lists);
  inv.list_fill = b.list_fill.reserve_as<int32_t>(n_lists);
  inv.list_start = b.list_start.reserve_as<int32_t>(n_lists);
  inv.list_queries = b.list_queries.reserve_as<int32_t>(size_t(n * width + n));
  inv.tasks = b.tasks.reserve_as<int32_t>(std::max<int64_t>(1, index.n_chunks));
  inv.n_tasks = b.n_tasks.reserve_as<int32_t>(1);
  const cuda::ProbedSample probed{int(plan.stride), sample_scores, sample_count, plan.sample_cap};
  if (probed_list_plans) {
    const cuda::PassThreshold in_pass{plan.rank, thresholds, sample_count + 1, plan.typical_sample};
    cuda::launch_probed_list_plans(index, queries, probes, nprobe, probed_words, probed_rows,
                                   probed, inv, stream, threshold_in_pass ? &in_pass : nullptr);
    timer.mark("probed lists' pass");
  } else if (probed_sample) {
    cuda::launch_probed_sample(index, queries, probes, nprobe, block_plans, probed, inv, stream);
    timer.mark("probed sample");
  } else {
    inv.cub_temp_bytes = cuda::invert_temp_bytes(index);
    inv.cub_temp = b.cub_temp.reserve(inv.cub_temp_bytes);
    cuda::launch_invert(index, queries, o.exact ? nullptr : probes, nprobe, inv, stream);
    timer.mark("invert");
  }
  const cuda::ListQueries lists{inv.list_start, inv.list_count, inv.list_queries};

  // Few distinct filters (not from the cache or the probed lists' pass): each row's Bloom plans
  // once, before the scans (cuda::launch_block_plans). More, in IVF: each (query, list) pair's
  // plan once per row of the list, when the words fit. Either way the rows the sample pass
  // reads get exact bits.
  const uint32_t* pair_rows = nullptr;
  int64_t pair_stride = 0;
  const int64_t list_blocks = longest_list_blocks(index);
  const int64_t n_pairs = n * nprobe;
  // Words from the filter cache or the probed lists' pass are exact for every row, so the
  // collect and the emit check nothing.
  const bool exact_words_everywhere = words_from_cache || probed_list_plans;
  if (few_plans && !words_from_cache && !probed_list_plans && !probed_sample) {
    // The few plans' words [n_plans][n_rows / 16] and counts [n_plans + 1].
    uint32_t* out = b.block_plans.reserve_as<uint32_t>(size_t(queries.n_plans) *
                                                       size_t(index.scan.n_rows / kBlockRows));
    unsigned long long* counts =
        b.plan_rows.reserve_as<unsigned long long>(size_t(queries.n_plans) + 1);
    cuda::launch_block_plans(index, queries, lists, inv.tasks, inv.n_tasks, queries.n_plans,
                             int(plan.stride), out, counts, stream);
    block_plans = out;
    plan_rows = counts;
    timer.mark("plans");
  } else if (queries.plan_of_query && queries.n_plans > cuda::kMaxBlockPlans && !o.exact &&
             n_pairs * list_blocks * int64_t(sizeof(uint32_t)) <= kMaxPairWordBytes) {
    pair_stride = list_blocks;
    uint32_t* out = b.block_plans.reserve_as<uint32_t>(size_t(n_pairs * list_blocks));
    uint32_t* counts = b.pair_rows.reserve_as<uint32_t>(size_t(std::max<int64_t>(1, n_pairs)));
    cuda::launch_pair_plans(index, queries, lists, inv.tasks, inv.n_tasks, n_pairs, pair_stride,
                            int(plan.stride), out, counts, stream);
    block_plans = out;
    pair_rows = counts;
    timer.mark("pair plans");
  }

  // Sample -> thresholds.
  {
    cuda::ScanPass pass;
    pass.sample_stride = int(plan.stride);
    pass.out_count = sample_count;
    pass.out_scores = sample_scores;
    pass.cap = plan.sample_cap;
    pass.block_plans = block_plans;
    pass.plan_rows = plan_rows;
    pass.pair_stride = pair_stride;
    pass.pair_rows = pair_rows;
    pass.exact_words = block_plans != nullptr;
    // Unfiltered exact search: every query's sample has the same slots, written without
    // counts or atomics (H100, the step: B = 64 0.129 -> 0.075 ms, B = 256 0.316 -> 0.150).
    pass.dense_sample = o.exact && !queries.plan_of_query;
    if (!probed_list_plans && !probed_sample) {  // else a probed lists' pass drew the sample
      if (pass.dense_sample) {
        ARGENT_CUDA_CHECK(cudaMemsetAsync(pass.out_scores, 0xff,
                                          sizeof(float) * size_t(n * plan.sample_cap), stream));
      } else {
        ARGENT_CUDA_CHECK(cudaMemsetAsync(pass.out_count, 0, sizeof(uint32_t) * n, stream));
      }
      // The list-major scan reads only the sampled blocks, each once for all of its list's
      // queries. (A pass of one warp per (query, list) pair, kept until 2026-12-04 for large
      // IVF batches, measured 0.43 ms against 0.18 ms at B = 256, nprobe 32 on the H200.)
      cuda::launch_scan(index, queries, lists, inv.tasks, inv.n_tasks, int(n), pass, stream);
      timer.mark("sample");
    }
    if (!threshold_in_pass) {
      cuda::launch_select_thresholds(pass.out_scores, pass.dense_sample ? nullptr : pass.out_count,
                                     plan.sample_cap, n, plan.rank, thresholds, stream);
      timer.mark("threshold");
    }
  }

  // Collect candidates >= T_q.
  cuda::ScanPass pass;
  pass.thresholds = thresholds;
  pass.check_inline = plan.stride == 1;
  // H200, K = 1000: IVF B = 64 collect 0.70 -> 0.64 ms, exact B = 1 2.68 -> 2.61; exact B = 256
  // 9.5 -> 10.5; IVF B = 64 under per-query filters 1.04 -> 0.72. Filtered exact batches do not
  // defer: B = 1 under a 10 % filter measured 2.16 -> 2.38 (docs/benchmarks.md).
  pass.defer_hits = !o.exact || (n <= 8 && !queries.plan_of_query);
  pass.block_plans = block_plans;
  pass.plan_rows = plan_rows;
  pass.pair_stride = pair_stride;
  pass.pair_rows = pair_rows;
  // Every block was sampled, or the words came from the filter cache or the probed lists' pass.
  pass.exact_words = block_plans != nullptr && (plan.stride == 1 || exact_words_everywhere);
  cuda::Candidates cand;
  cand.n = n;
  cand.flat = plan.flat;
  // K up to 2048 (per-query buffers): one kernel per query, where the general path's prune,
  // segmented sort, tie pass and emit took some ten launches (H100, K = 1000, the step: IVF B = 1
  // 0.068 -> 0.032 ms, exact B = 64 0.18-0.20 -> 0.10, IVF B = 64 under a 10 % filter 0.12 ->
  // 0.08; search ms in docs/benchmarks.md).
  const bool fused_top_k = cuda::fused_top_k(cand, o.k, o.stable_ties);
  const size_t sort_items = size_t(plan.flat ? plan.flat_slots : n * plan.cap);
  cuda::SortBuffers sb{};
  sb.keys[0] = b.keys0.reserve_as<uint64_t>(sort_items);
  sb.values[0] = b.values0.reserve_as<int32_t>(sort_items);
  // The second pair is the radix sort's alone: the fused top k leaves it to a stable re-sort
  // after it, which reserves it then (exact B = 64, K = 1000: 56 MB less).
  auto reserve_second_sort_pair = [&]() {
    sb.keys[1] = b.keys1.reserve_as<uint64_t>(sort_items);
    sb.values[1] = b.values1.reserve_as<int32_t>(sort_items);
  };
  if (!fused_top_k) reserve_second_sort_pair();
  if (plan.flat) {
    pass.out_keys = b.cand_keys.reserve_as<uint64_t>(size_t(plan.flat_slots));
    pass.out_rows = b.cand_rows.reserve_as<int32_t>(size_t(plan.flat_slots));
    pass.out_fill = b.cand_fill.reserve_as<unsigned long long>(1);
    pass.out_dropped = b.cand_dropped.reserve_as<uint32_t>(n);
    pass.cap = plan.flat_slots;
    pass.flat_slack = plan.flat_slack;
    ARGENT_CUDA_CHECK(
        cudaMemsetAsync(pass.out_keys, 0xff, sizeof(uint64_t) * size_t(plan.flat_slots), stream));
    ARGENT_CUDA_CHECK(cudaMemsetAsync(pass.out_fill, 0, sizeof(unsigned long long), stream));
    ARGENT_CUDA_CHECK(cudaMemsetAsync(pass.out_dropped, 0, sizeof(uint32_t) * n, stream));
    cand.cap = plan.flat_slots;
    cand.keys[0] = pass.out_keys, cand.flat_rows[0] = pass.out_rows;
    cand.keys[1] = sb.keys[0], cand.flat_rows[1] = sb.values[0];
    cand.keys[2] = sb.keys[1], cand.flat_rows[2] = sb.values[1];
    cand.dropped = pass.out_dropped;
    cand.segments = b.flat_segments.reserve_as<int32_t>(size_t(2 * n));
  } else {
    pass.out_count = b.cand_count.reserve_as<uint32_t>(n);
    pass.out_scores = b.cand_scores.reserve_as<float>(size_t(n * plan.cap));
    pass.out_rows = b.cand_rows.reserve_as<int32_t>(size_t(n * plan.cap));
    pass.cap = plan.cap;
    ARGENT_CUDA_CHECK(cudaMemsetAsync(pass.out_count, 0, sizeof(uint32_t) * n, stream));
    cand.cap = plan.cap;
    cand.scores = pass.out_scores;
    cand.rows = pass.out_rows;
    cand.count = pass.out_count;
  }
  // A one-query IVF batch whose probed pass wrote the tasks: a warp per block scores the rows
  // with dp4a and, under a filter, reads only its eligible rows' codes (cuda::
  // launch_probed_collect), where the scan's mma tiles would leave seven of eight queries idle
  // (H100, K = 1000, nprobe 32, mean of 256 queries, the step: unfiltered 0.032 -> 0.020 ms,
  // a 10 % filter 0.032 -> 0.011, 1 % 0.031 -> 0.010, NOT 0.042 -> 0.014).
  const bool probed_collect = (probed_list_plans || probed_sample) && !plan.flat;
  if (probed_collect) {
    cuda::ProbedCollect pc;
    pc.threshold = thresholds;
    pc.words = block_plans;
    pc.check_live = pass.check_inline;
    pc.out_scores = pass.out_scores;
    pc.out_rows = pass.out_rows;
    pc.out_count = pass.out_count;
    pc.cap = pass.cap;
    const int64_t most_tasks = std::min<int64_t>(
        index.n_chunks, int64_t(nprobe) * ((list_blocks + kChunkBlocks - 1) / kChunkBlocks));
    cuda::launch_probed_collect(index, queries, inv.tasks, inv.n_tasks, most_tasks, pc, stream);
  } else {
    cuda::launch_scan(index, queries, lists, inv.tasks, inv.n_tasks, int(n), pass, stream);
  }
  timer.mark("collect");

  // Sort, order ties, emit; flag the queries to rescue.
  int32_t* rescue = b.rescue.reserve_as<int32_t>(n);
  int32_t* n_rescue = b.n_rescue.reserve_as<int32_t>(1);
  ARGENT_CUDA_CHECK(cudaMemsetAsync(n_rescue, 0, sizeof(int32_t), stream));
  if (fused_top_k) {
    cuda::launch_fused_top_k(index, queries, cand, thresholds, o.k, sb, scores, ids, rows, rescue,
                             n_rescue, stream);
  } else {
    sb.cub_temp_bytes = cuda::sort_temp_bytes(cand, o.stable_ties);
    sb.cub_temp = b.sort_temp.reserve(sb.cub_temp_bytes);
    // Candidates flagged for the exact check (a filter's Bloom words, neither cached nor exact)
    // would mostly leave nothing to prune, the select then only a cost (H100, B = 64 under a
    // 10 % filter: IVF 0.708 -> 0.730 ms, exact 2.55 -> 2.63).
    const bool prune = !queries.plan_of_query || pass.exact_words;
    cuda::launch_sort_and_emit(index, queries, cand, thresholds, o.k, o.stable_ties, prune, sb,
                               scores, ids, rows, rescue, n_rescue, stream);
  }
  timer.mark("sort+emit");
  if (timer.on())
    timer.note("collect_MB", task_code_bytes(index, inv.tasks, inv.n_tasks, stream) / 1e6);

  // Each query's candidates, whether or not they found a slot: its appends (per query), or its
  // sorted entries plus those the pool had no room for (flat; summed once synchronised).
  std::vector<uint32_t> flat_dropped;
  auto copy_counts = [&](std::vector<uint32_t>& counts) {
    counts.resize(static_cast<size_t>(n));
    if (cand.flat) {
      flat_dropped.resize(static_cast<size_t>(n));
      ARGENT_CUDA_CHECK(cudaMemcpyAsync(counts.data(), cand.segments + n, sizeof(int32_t) * n,
                                        cudaMemcpyDeviceToHost, stream));
      ARGENT_CUDA_CHECK(cudaMemcpyAsync(flat_dropped.data(), cand.dropped, sizeof(uint32_t) * n,
                                        cudaMemcpyDeviceToHost, stream));
    } else {
      ARGENT_CUDA_CHECK(cudaMemcpyAsync(counts.data(), cand.count, sizeof(uint32_t) * n,
                                        cudaMemcpyDeviceToHost, stream));
    }
  };
  int32_t host_rescue = 0;
  ARGENT_CUDA_CHECK(cudaMemcpyAsync(&host_rescue, n_rescue, sizeof(int32_t),
                                    cudaMemcpyDeviceToHost, stream));
  std::vector<uint32_t> counts;
  if (stats) copy_counts(counts);
  int32_t host_bad_probes = 0;
  if (n_bad_probes)
    ARGENT_CUDA_CHECK(cudaMemcpyAsync(&host_bad_probes, n_bad_probes, sizeof(int32_t),
                                      cudaMemcpyDeviceToHost, stream));
  ARGENT_CUDA_CHECK(cudaStreamSynchronize(stream));
  ARGENT_CHECK(host_bad_probes == 0, "GPU search: ", host_bad_probes,
               " probe entries are not a list number in [0, ", n_lists,
               ") or -1, or repeat a list of their query's row");
  if (stats) {
    stats->candidates = 0;
    for (uint32_t c : counts) stats->candidates += c;
    stats->rescued_queries = 0;
    stats->resorted_queries = 0;
    stats->sample_stride = int(plan.stride);
    stats->flat_candidates = plan.flat;
    stats->cached_filters = words_from_cache;
    stats->probed_list_words = probed_list_plans;
    stats->probed_sample = probed_sample;
    stats->probed_collect = probed_collect;
    stats->fused_top_k = fused_top_k;
    stats->carried_plans = plans_carried;
    stats->workspace_bytes = b.bytes();
  }
  if (host_rescue == 0) return;

  std::vector<int32_t> flags(static_cast<size_t>(n));
  ARGENT_CUDA_CHECK(cudaMemcpy(flags.data(), rescue, sizeof(int32_t) * n, cudaMemcpyDeviceToHost));
  const int64_t n_resort = std::count(flags.begin(), flags.end(), cuda::kRescueResort);
  if (n_resort > 0) {
    // Long runs of equal scores reach some query's results (large k over scores of one global
    // scale: K = 100,000 meets them in nearly every query). Their candidates are right, only
    // unordered: the whole batch is sorted again with ties by id (one more radix sort), which is
    // far cheaper than re-running each of those queries' scans.
    if (fused_top_k) reserve_second_sort_pair();
    sb.cub_temp_bytes = cuda::sort_temp_bytes(cand, true);
    sb.cub_temp = b.sort_temp.reserve(sb.cub_temp_bytes);
    ARGENT_CUDA_CHECK(cudaMemsetAsync(n_rescue, 0, sizeof(int32_t), stream));
    cuda::launch_sort_and_emit(index, queries, cand, thresholds, o.k, true, false, sb, scores,
                               ids, rows, rescue, n_rescue, stream);
    timer.mark("stable re-sort");
    ARGENT_CUDA_CHECK(cudaMemcpyAsync(flags.data(), rescue, sizeof(int32_t) * n,
                                      cudaMemcpyDeviceToHost, stream));
    ARGENT_CUDA_CHECK(cudaStreamSynchronize(stream));
  }
  const int64_t n_rerun = std::count(flags.begin(), flags.end(), cuda::kRescueRerun);
  if (stats) {
    stats->resorted_queries = n_resort;
    stats->rescued_queries = n_rerun;
    stats->workspace_bytes = b.bytes();
  }
  if (n_rerun == 0) return;

  // Rare: re-run each query whose candidates were not enough alone, its ties ordered by the
  // stable sort, with a 16x denser sample; once the sample was every row (T_q the exact k-th
  // eligible score), with a slot for every row scoring >= T_q: more rows tie with the k-th score
  // than the buffer held (a query that scores every item the same, such as a zero vector, ties
  // them all).
  if (counts.empty()) {  // not copied above for the stats
    copy_counts(counts);
    ARGENT_CUDA_CHECK(cudaStreamSynchronize(stream));
  }
  for (size_t q = 0; q < flat_dropped.size(); ++q) counts[q] += flat_dropped[q];
  if (!b.rescue_workspace) b.rescue_workspace = std::make_unique<GpuSearchWorkspace>();
  for (int64_t q = 0; q < n; ++q) {
    if (flags[size_t(q)] != cuda::kRescueRerun) continue;
    GpuQueriesView one = queries;
    one.codes += q * index.scan.d_pad;
    one.scales += q;
    one.n = 1;
    if (one.plan_of_query) one.plan_of_query += q;
    // Every row sampled, a slot for each row at or above T_q, ties sorted stably: nothing a
    // re-run could change.
    const int64_t found_q = counts[size_t(q)];
    ARGENT_CHECK(!(plan.stride == 1 && o.stable_ties && found_q <= plan.cap), "GPU search: query ",
                 q, " still flagged after its exact re-run (", found_q, " candidates, ", plan.cap,
                 " slots)");
    GpuSearchOptions o1 = o;
    o1.unsent_plans = nullptr;  // on the device since this batch's probe (or before it)
    o1.stable_ties = true;
    o1.sample_stride = int(std::max<int64_t>(1, plan.stride / 16));
    o1.candidate_cap = plan.stride == 1 ? std::max(found_q, o.k) : 0;
    // A re-run is part of this batch, not another use of its filters: it may read the cache's
    // words (a peek) but must not count towards admitting or keeping a filter.
    if (!words_from_cache) o1.filter_cache = nullptr;
    o1.filter_cache_peek = true;
    if (!o.exact) o1.probes = probes + q * nprobe, o1.nprobe = nprobe;
    run_gpu_search(index, one, o1, scores + q * o.k, ids + q * o.k, rows ? rows + q * o.k : nullptr,
                   *b.rescue_workspace, nullptr, stream);
  }
}

}  // namespace argent
