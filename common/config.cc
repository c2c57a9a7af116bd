#include "common/config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>

#include <cmath>
#include <limits>
#include <map>
#include <sstream>

#include "common/error.h"

namespace argent {
namespace {

struct Entry {
  ConfigKey key;
  std::function<void(Config&, const YAML::Node&, const std::string& where)> set;
};

std::string where_of(const std::string& origin, const YAML::Node& node) {
  return origin + ":" + std::to_string(node.Mark().line + 1);
}

// Where a cross-key check points: the line of `section.name` when the file sets it, else the file.
std::string where_of_key(const std::string& origin, const YAML::Node& root, const char* section,
                         const char* name) {
  const YAML::Node s = root[section];
  if (s && s.IsMap() && s[name]) return where_of(origin, s[name]);
  return origin;
}

template <typename T>
T scalar_as(const YAML::Node& node, const std::string& key, const std::string& where,
            const char* type) {
  ARGENT_CHECK(node.IsScalar(), where, ": ", key, " must be a ", type);
  try {
    return node.as<T>();
  } catch (const YAML::Exception&) {
    ARGENT_CHECK(false, where, ": ", key, " = '", node.Scalar(), "' is not a valid ", type);
  }
  return T{};
}

template <typename T>
std::string text(T v) {
  std::ostringstream s;
  s << std::boolalpha << v;
  return s.str();
}

// Integer key with an inclusive range.
template <typename Section, typename T>
Entry int_key(const std::string& path, Section Config::*section, T Section::*field, int64_t lo,
              int64_t hi, const std::string& doc) {
  Config defaults;
  Entry e{{path, "int", text((defaults.*section).*field), doc + " Range [" + text(lo) + ", " + text(hi) + "]."},
          nullptr};
  e.set = [=](Config& c, const YAML::Node& n, const std::string& where) {
    const int64_t v = scalar_as<int64_t>(n, path, where, "integer");
    ARGENT_CHECK(v >= lo && v <= hi, where, ": ", path, " = ", v, " is out of range [", lo,
                 ", ", hi, "]");
    (c.*section).*field = T(v);
  };
  return e;
}

template <typename Section>
Entry float_key(const std::string& path, Section Config::*section, double Section::*field,
                double lo, double hi, const std::string& doc) {
  Config defaults;
  Entry e{{path, "float", text((defaults.*section).*field), doc + " Range [" + text(lo) + ", " + text(hi) + "]."},
          nullptr};
  e.set = [=](Config& c, const YAML::Node& n, const std::string& where) {
    const double v = scalar_as<double>(n, path, where, "number");
    ARGENT_CHECK(std::isfinite(v) && v >= lo && v <= hi, where, ": ", path, " = ", v,
                 " is out of range [", lo, ", ", hi, "]");
    (c.*section).*field = v;
  };
  return e;
}

template <typename Section>
Entry bool_key(const std::string& path, Section Config::*section, bool Section::*field,
               const std::string& doc) {
  Config defaults;
  Entry e{{path, "bool", text((defaults.*section).*field), doc}, nullptr};
  e.set = [=](Config& c, const YAML::Node& n, const std::string& where) {
    (c.*section).*field = scalar_as<bool>(n, path, where, "boolean (true/false)");
  };
  return e;
}

template <typename Section>
Entry string_key(const std::string& path, Section Config::*section, std::string Section::*field,
                 const std::string& doc) {
  Config defaults;
  Entry e{{path, "string", (defaults.*section).*field, doc}, nullptr};
  e.set = [=](Config& c, const YAML::Node& n, const std::string& where) {
    (c.*section).*field = scalar_as<std::string>(n, path, where, "string");
  };
  return e;
}

template <typename Section>
Entry choice_key(const std::string& path, Section Config::*section, std::string Section::*field,
                 const std::vector<std::string>& choices, const std::string& doc) {
  Config defaults;
  std::string listed;
  for (const std::string& c : choices) listed += (listed.empty() ? "" : ", ") + c;
  Entry e{{path, "string", (defaults.*section).*field, doc + " One of: " + listed + "."}, nullptr};
  e.set = [=](Config& c, const YAML::Node& n, const std::string& where) {
    const std::string v = scalar_as<std::string>(n, path, where, "string");
    ARGENT_CHECK(std::find(choices.begin(), choices.end(), v) != choices.end(), where, ": ",
                 path, " = '", v, "' is not one of: ", listed);
    (c.*section).*field = v;
  };
  return e;
}

// A YAML sequence of scalars, e.g. `tasks: [click, like]`; T is std::string, int64_t or double.
template <typename Section, typename T>
Entry list_key(const std::string& path, Section Config::*section, std::vector<T> Section::*field,
               const char* type, const std::string& doc) {
  Config defaults;
  std::string shown = "[";
  for (const T& v : (defaults.*section).*field) shown += (shown.size() > 1 ? ", " : "") + text(v);
  Entry e{{path, std::string("list of ") + type, shown + "]", doc}, nullptr};
  e.set = [=](Config& c, const YAML::Node& n, const std::string& where) {
    ARGENT_CHECK(n.IsSequence(), where, ": ", path, " must be a list, e.g. [a, b]");
    std::vector<T> out;
    for (const YAML::Node& item : n) out.push_back(scalar_as<T>(item, path, where, type));
    (c.*section).*field = std::move(out);
  };
  return e;
}

const std::vector<Entry>& schema() {
  static const std::vector<Entry> entries = [] {
    using C = Config;
    constexpr int64_t kIntMax = std::numeric_limits<int32_t>::max();
    return std::vector<Entry>{
        string_key("index.dir", &C::index, &IndexConfig::dir,
                   "Index directory: written by build-index, read by search and serve."),
        int_key("index.partitions", &C::index, &IndexConfig::partitions, 1, 65536,
                "Partitions the index is split into (item -> partition by a hash of its id); the "
                "unit of placement and rebalancing."),
        int_key("index.nlist", &C::index, &IndexConfig::nlist, 0, 1 << 22,
                "IVF lists (k-means clusters). 0 picks about 4 * sqrt(items)."),
        bool_key("index.normalize", &C::index, &IndexConfig::normalize,
                 "L2-normalize items and queries (cosine similarity) before quantization."),
        int_key("index.kmeans_iterations", &C::index, &IndexConfig::kmeans_iterations, 1, 100,
                "Lloyd iterations of the coarse quantizer's k-means."),
        int_key("index.kmeans_points_per_list", &C::index, &IndexConfig::kmeans_points_per_list,
                4, 4096, "Training sample size per list (sample = nlist * this, at most all items)."),
        int_key("index.bloom_bits", &C::index, &IndexConfig::bloom_bits, 64, 4096,
                "Bloom signature bits per item; a multiple of 64."),
        int_key("index.bloom_hashes", &C::index, &IndexConfig::bloom_hashes, 1, 16,
                "Bits each (feature, value) pair sets in the signature."),
        float_key("index.list_slack", &C::index, &IndexConfig::list_slack, 0.0, 10.0,
                  "Spare rows reserved per IVF list at load, as a fraction of its size, for "
                  "in-place upserts."),
        int_key("index.seed", &C::index, &IndexConfig::seed, 0, kIntMax,
                "Seed of k-means sampling and synthetic data."),
        int_key("search.k", &C::search, &SearchConfig::k, 0, 100000,
                "Default number of results per query."),
        int_key("search.nprobe", &C::search, &SearchConfig::nprobe, 1, 1 << 22,
                "Default IVF lists probed per query."),
        int_key("search.batch", &C::search, &SearchConfig::batch, 1, 65536,
                "Queries searched together by `argent search`."),
        int_key("search.max_k", &C::search, &SearchConfig::max_k, 1, 1000000,
                "Largest k a request may ask for."),
        int_key("search.threads", &C::search, &SearchConfig::threads, 0, 1024,
                "CPU threads per process for search and build; 0 uses all cores."),
        choice_key("search.device", &C::search, &SearchConfig::device, {"cpu", "cuda"},
                   "Where each shard scans: cpu (SIMD kernels) or cuda (the CUDA search, on GPU "
                   "(node-local rank mod the node's GPUs), so several ranks may share a GPU; "
                   "same results). cuda needs a build with the CUDA backend and a GPU."),
        int_key("search.filter_cache_mb", &C::search, &SearchConfig::filter_cache_mb, 0, 1 << 20,
                "Memory (MiB) each shard keeps, on the device that scans, for recurring filters: "
                "a filter met in a second batch is evaluated exactly over every row once (n_rows "
                "/ 8 bytes on the CPU, n_rows / 4 on the GPU: 10 and 20 MB at 80M rows) and "
                "serves later batches without the per-batch Bloom pass and exact checks; when "
                "full, the least recently used of the less often met filters go first. In-place "
                "writes recompute the blocks they wrote. Same results either way; 0 turns it "
                "off."),
        string_key("search.module", &C::search, &SearchConfig::module,
                   "A saved TorchScript retrieval module (python/argent/torch.py, "
                   "ArgentRetrieval): each shard runs the module's scan method over its own "
                   "tensors, bound as the module's index buffers, instead of calling the scan "
                   "directly (same results; docs/torch.md). Empty: the built-in scan. Needs "
                   "search.device: cpu."),
        int_key("synthetic.clusters", &C::synthetic, &SyntheticConfig::clusters, 1, 1 << 24,
                "Gaussian mixture components of `build-index --synthetic`."),
        float_key("synthetic.cluster_spread", &C::synthetic, &SyntheticConfig::cluster_spread,
                  0.0, 10.0, "Within-cluster standard deviation relative to the centre's norm."),
        int_key("synthetic.feature_ids", &C::synthetic, &SyntheticConfig::feature_ids, 0, 4096,
                "Distinct categorical feature ids in synthetic items."),
        int_key("synthetic.features_per_item", &C::synthetic,
                &SyntheticConfig::features_per_item, 0, 256,
                "(feature, value) pairs drawn per synthetic item."),
        int_key("synthetic.values_per_feature", &C::synthetic,
                &SyntheticConfig::values_per_feature, 1, int64_t(1) << 40,
                "Distinct values per feature id (Zipf-distributed)."),
        float_key("synthetic.zipf_exponent", &C::synthetic, &SyntheticConfig::zipf_exponent,
                  0.0, 5.0, "Zipf exponent of feature values (0: uniform)."),
        string_key("serve.endpoint", &C::serve, &ServeConfig::endpoint,
                   "ZeroMQ endpoint the coordinator's gateway binds (ROUTER socket)."),
        choice_key("serve.backend", &C::serve, &ServeConfig::backend, {"cpu", "cuda"},
                   "Collectives backend: cpu = MPI on host buffers; cuda = NCCL on GPU buffers, "
                   "each rank on the GPU of its node-local rank."),
        bool_key("serve.coordinator_serves", &C::serve, &ServeConfig::coordinator_serves,
                 "Rank 0 also holds partitions; false keeps it a pure coordinator (needs >= 2 "
                 "ranks)."),
        int_key("serve.max_batch", &C::serve, &ServeConfig::max_batch, 1, 4096,
                "Dynamic batching: most requests searched in one step."),
        int_key("serve.max_wait_us", &C::serve, &ServeConfig::max_wait_us, 0, 10000000,
                "Dynamic batching: longest a request waits for others to fill its batch."),
        int_key("serve.max_queue", &C::serve, &ServeConfig::max_queue, 1, 1 << 24,
                "Requests queued at most; beyond it requests get OVERLOADED at once."),
        int_key("serve.max_queue_bytes", &C::serve, &ServeConfig::max_queue_bytes,
                int64_t(1) << 20, int64_t(1) << 40,
                "Bytes of decoded requests held at most by the search queue, and as much again "
                "by the write queue, from admission until each request is answered (queued, "
                "searched, merged, logged); a search also counts the candidates its step "
                "gathers from every rank. A request that does not fit gets OVERLOADED at once "
                "(one is always admitted when none is held). Bounds the memory of requests "
                "that are each within the per-request caps but large."),
        int_key("serve.max_message_bytes", &C::serve, &ServeConfig::max_message_bytes, 1024,
                int64_t(1) << 30, "Largest request message; larger ones get INVALID_ARGUMENT."),
        int_key("serve.default_timeout_ms", &C::serve, &ServeConfig::default_timeout_ms, 0,
                int64_t(1) << 40,
                "Deadline of a request that sets none (0: none); a request still queued or "
                "searching at its deadline gets DEADLINE_EXCEEDED."),
        int_key("serve.collective_timeout_ms", &C::serve, &ServeConfig::collective_timeout_ms, 100,
                int64_t(1) << 40,
                "A collective that does not finish in this time fails its rank (an error naming "
                "the operation and the rank; the job ends, see serve.step_timeout_ms) instead of "
                "hanging it."),
        float_key("serve.stats_interval_s", &C::serve, &ServeConfig::stats_interval_s, 0.0,
                  3600.0, "Seconds between the server's stats log lines (0: never)."),
        int_key("serve.step_timeout_ms", &C::serve, &ServeConfig::step_timeout_ms, 100,
                int64_t(1) << 40,
                "A step (search, stats/heartbeat, mutation, partition move chunk or abort, shutdown) "
                "must finish on every rank within this; "
                "else each rank's watchdog aborts its communicator and exits, and the coordinator "
                "first answers every in-flight and queued request UNAVAILABLE naming the rank."),
        int_key("serve.snapshot_timeout_ms", &C::serve, &ServeConfig::snapshot_timeout_ms, 100,
                int64_t(1) << 40,
                "The same deadline for snapshot steps (every rank writes its partitions) and the "
                "begin and commit steps of a partition move (encode, add and replay a partition)."),
        int_key("serve.heartbeat_ms", &C::serve, &ServeConfig::heartbeat_ms, 10, 3600000,
                "An idle coordinator sends a heartbeat step this often; a shard rank that hears "
                "no step for heartbeat_ms + step_timeout_ms takes the coordinator for lost and "
                "exits."),
        int_key("serve.abort_grace_ms", &C::serve, &ServeConfig::abort_grace_ms, 10, 60000,
                "After a failure: time to answer clients and abort the communicator "
                "(ncclCommAbort) before the process exits (_exit). Keep it under mpirun's 1 s "
                "between SIGTERM and SIGKILL."),
        list_key("serve.standby_ranks", &C::serve, &ServeConfig::standby_ranks, "int",
                 "Ranks that start with no partitions, to take load later with `argent admin "
                 "rebalance activate RANK`. Used only when the index has no partition map yet "
                 "(a snapshot or the write-ahead log holds the map of a rebalanced index)."),
        int_key("serve.move_chunk_bytes", &C::serve, &ServeConfig::move_chunk_bytes, 4096,
                int64_t(1) << 30,
                "Bytes of a moving partition sent per step: search and write steps run between "
                "the chunks. A chunk step must finish within serve.step_timeout_ms."),
        bool_key("rerank.enabled", &C::rerank, &RerankConfig::enabled,
                 "Rerank the merged candidates on the coordinator with rerank.model; when false, "
                 "results are the retrieval order and task_weights in requests are rejected."),
        string_key("rerank.model", &C::rerank, &RerankConfig::model,
                   "Reranker model file (TorchScript, written by python/train_reranker.py; "
                   "docs/formats.md)."),
        list_key("rerank.tasks", &C::rerank, &RerankConfig::tasks, "string",
                 "Task heads, in the model's order; must equal the model file's tasks."),
        list_key("rerank.hidden", &C::rerank, &RerankConfig::hidden, "int",
                 "OverArch hidden layer sizes; must equal the model file's."),
        choice_key("rerank.activation", &C::rerank, &RerankConfig::activation,
                   {"relu", "gelu", "tanh", "silu"},
                   "OverArch activation; must equal the model file's."),
        list_key("rerank.task_weights", &C::rerank, &RerankConfig::task_weights, "float",
                 "Value model: weight w_t of each task's probability in the blended value "
                 "sum_t w_t * sigmoid(logit_t) + w_r * retrieval score. Empty: the weights stored "
                 "in the model file (w_r included). A request's task_weights override them."),
        float_key("rerank.retrieval_score_weight", &C::rerank,
                  &RerankConfig::retrieval_score_weight, -1e6, 1e6,
                  "Value model: w_r, used when rerank.task_weights is set."),
        int_key("rerank.depth", &C::rerank, &RerankConfig::depth, 1, 100000,
                "Candidates reranked per query (the retrieval top-depth); a request's "
                "rerank_depth overrides it."),
        int_key("rerank.chunk_rows", &C::rerank, &RerankConfig::chunk_rows, 1, 1 << 24,
                "Candidates scored per forward pass; bounds the reranker's working memory "
                "(about chunk_rows * (3 * dim + 2 * widest layer) floats)."),
        choice_key("rerank.device", &C::rerank, &RerankConfig::device, {"auto", "cpu", "cuda"},
                   "Where the coordinator runs the reranker: auto = CUDA when available, else "
                   "CPU."),
        int_key("updates.max_request_items", &C::updates, &UpdatesConfig::max_request_items, 1,
                1 << 20,
                "Most items (or ids) one Upsert (Delete) request may carry; larger ones get "
                "INVALID_ARGUMENT."),
        int_key("updates.max_step_items", &C::updates, &UpdatesConfig::max_step_items, 1,
                1 << 22,
                "Group commit: queued mutations are logged with one fdatasync and applied in "
                "one step until this many items (a larger request still goes alone)."),
        float_key("updates.snapshot_interval_s", &C::updates, &UpdatesConfig::snapshot_interval_s,
                  0.0, 604800.0,
                  "Seconds between automatic snapshots, taken only when the log has records "
                  "(0: only `argent admin snapshot`)."),
        int_key("updates.snapshot_wal_bytes", &C::updates, &UpdatesConfig::snapshot_wal_bytes, 0,
                int64_t(1) << 50,
                "Also snapshot when the write-ahead log grows past this many bytes (0: never)."),
        float_key("updates.compact_tombstone_ratio", &C::updates,
                  &UpdatesConfig::compact_tombstone_ratio, 0.0, 1.0,
                  "A rank compacts its shard when deleted rows exceed this fraction of its rows "
                  "in use (0: only at snapshots and when a full list is reallocated)."),
        bool_key("gateway.auth", &C::gateway, &GatewayConfig::auth,
                 "CURVE encryption and authentication: only clients whose public key is in "
                 "gateway.allow_list connect, each with its role (query: search, stats, health; "
                 "admin: also upsert, delete and admin actions). Off only for local demos."),
        string_key("gateway.server_key", &C::gateway, &GatewayConfig::server_key,
                   "The server's CURVE key pair file (`argent admin keygen --out NAME` writes "
                   "NAME.key); needed with gateway.auth."),
        string_key("gateway.allow_list", &C::gateway, &GatewayConfig::allow_list,
                   "Allowed clients: one '<40-char Z85 public key> <query|admin>' per line, '#' "
                   "comments; reloaded when it changes and on SIGHUP. Needed with gateway.auth."),
        float_key("gateway.allow_list_check_s", &C::gateway, &GatewayConfig::allow_list_check_s,
                  0.05, 3600.0,
                  "Seconds between checks of the allow-list file's modification time."),
        int_key("gateway.send_hwm", &C::gateway, &GatewayConfig::send_hwm, 1, 1 << 24,
                "Replies queued per client (ZMQ_SNDHWM); once a client stops reading, further "
                "replies to it are dropped and counted (dropped_replies)."),
        int_key("gateway.receive_hwm", &C::gateway, &GatewayConfig::receive_hwm, 1, 1 << 24,
                "Requests queued per client inside ZeroMQ (ZMQ_RCVHWM)."),
        int_key("gateway.handshake_ms", &C::gateway, &GatewayConfig::handshake_ms, 100,
                600000,
                "A connection that has not finished its ZMTP/CURVE handshake in this time is "
                "closed (ZMQ_HANDSHAKE_IVL)."),
        int_key("gateway.max_frames", &C::gateway, &GatewayConfig::max_frames, 2, 64,
                "Frames in one request, the routing frames included; a request with more, or "
                "whose frames sum to more than serve.max_message_bytes, is discarded as it "
                "arrives and answered INVALID_ARGUMENT."),
        int_key("gateway.max_exclude_ids", &C::gateway, &GatewayConfig::max_exclude_ids, 0,
                int64_t(1) << 24, "Most exclude_ids in one search request."),
        int_key("gateway.max_rerank_depth", &C::gateway, &GatewayConfig::max_rerank_depth, 1,
                100000, "Largest rerank_depth a search request may ask for."),
        int_key("gateway.max_filter_chars", &C::gateway, &GatewayConfig::max_filter_chars, 0,
                65536, "Longest filter expression, in characters (checked before parsing)."),
        int_key("gateway.max_filter_depth", &C::gateway, &GatewayConfig::max_filter_depth, 1, 64,
                "Deepest nesting of a filter expression (parentheses and NOT)."),
        int_key("gateway.max_item_features", &C::gateway, &GatewayConfig::max_item_features, 0,
                1 << 20, "Most (feature, value) pairs of one upserted item."),
        int_key("gateway.log_rejections_per_s", &C::gateway, &GatewayConfig::log_rejections_per_s,
                1, 100000,
                "Refused connections and requests logged per second at most; the rest are "
                "counted and the count logged with the next line."),
        string_key("metrics.endpoint", &C::metrics, &MetricsConfig::endpoint,
                   "HOST:PORT where the coordinator serves Prometheus metrics over HTTP at "
                   "/metrics (e.g. 0.0.0.0:9464); empty or port 0: no endpoint."),
    };
  }();
  return entries;
}

void apply(Config& c, const YAML::Node& node, const std::string& prefix, const std::string& origin,
           const std::map<std::string, const Entry*>& by_path) {
  ARGENT_CHECK(node.IsMap(), where_of(origin, node), ": ",
               prefix.empty() ? std::string("the file") : prefix, " must be a mapping");
  for (const auto& kv : node) {
    const std::string key = kv.first.as<std::string>();
    const std::string path = prefix.empty() ? key : prefix + "." + key;
    const std::string where = where_of(origin, kv.first);
    auto it = by_path.find(path);
    if (it != by_path.end()) {
      it->second->set(c, kv.second, where);
      continue;
    }
    // A section prefix: recurse; anything else is an unknown key.
    bool is_section = false;
    std::string valid;
    for (const auto& [p, e] : by_path) {
      if (p.rfind(path + ".", 0) == 0) is_section = true;
      const std::string parent = prefix.empty() ? "" : prefix + ".";
      if (p.rfind(parent, 0) == 0) {
        std::string rest = p.substr(parent.size());
        rest = rest.substr(0, rest.find('.'));
        if (valid.find(" " + rest + ",") == std::string::npos) valid += " " + rest + ",";
      }
    }
    if (!valid.empty()) valid.pop_back();
    ARGENT_CHECK(is_section, where, ": unknown key '", path, "' (valid here:", valid, ")");
    apply(c, kv.second, path, origin, by_path);
  }
}

void check_rerank(const RerankConfig& r, const std::string& origin) {
  ARGENT_CHECK(!r.tasks.empty() && r.tasks.size() <= 64, origin, ": rerank.tasks has ",
               r.tasks.size(), " names; expected 1 to 64");
  ARGENT_CHECK(!r.hidden.empty() && r.hidden.size() <= 16, origin, ": rerank.hidden has ",
               r.hidden.size(), " layers; expected 1 to 16");
  for (int64_t h : r.hidden)
    ARGENT_CHECK(h >= 1 && h <= 65536, origin, ": rerank.hidden size ", h,
                 " is out of range [1, 65536]");
  ARGENT_CHECK(r.task_weights.empty() || r.task_weights.size() == r.tasks.size(), origin,
               ": rerank.task_weights has ", r.task_weights.size(), " values for ",
               r.tasks.size(), " tasks");
  for (double w : r.task_weights)
    ARGENT_CHECK(std::isfinite(w), origin, ": rerank.task_weights has a non-finite value ", w);
  ARGENT_CHECK(!r.enabled || !r.model.empty(), origin,
               ": rerank.enabled is true but rerank.model names no file");
}

}  // namespace

Config parse_config(const std::string& yaml_text, const std::string& origin) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    ARGENT_CHECK(false, origin, ":", e.mark.line + 1, ": YAML syntax error: ", e.msg);
  }
  std::map<std::string, const Entry*> by_path;
  for (const Entry& e : schema()) by_path[e.key.path] = &e;
  Config c;
  if (root.IsNull()) return c;
  apply(c, root, "", origin, by_path);
  const YAML::Node& top = root;
  ARGENT_CHECK(c.index.bloom_bits % 64 == 0, where_of_key(origin, top, "index", "bloom_bits"),
               ": index.bloom_bits = ", c.index.bloom_bits, " must be a multiple of 64");
  check_rerank(c.rerank, origin);
  ARGENT_CHECK(!c.gateway.auth || (!c.gateway.server_key.empty() && !c.gateway.allow_list.empty()),
               where_of_key(origin, top, "gateway", "auth"),
               ": gateway.auth is true but gateway.server_key or gateway.allow_list names "
               "no file");
  return c;
}

Config load_config(const std::string& path) {
  YAML::Node probe;
  std::string text;
  {
    FILE* f = std::fopen(path.c_str(), "rb");
    ARGENT_CHECK(f != nullptr, "cannot open config file ", path, ": ", std::strerror(errno));
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
    std::fclose(f);
  }
  return parse_config(text, path);
}

std::vector<ConfigKey> config_schema() {
  std::vector<ConfigKey> keys;
  for (const Entry& e : schema()) keys.push_back(e.key);
  return keys;
}

std::string config_markdown() {
  std::ostringstream md;
  md << "# Configuration reference\n\n"
     << "<!-- Generated by `argent config-doc` from the schema in common/config.cc; CI checks "
        "that this file is current. Do not edit by hand. -->\n\n"
     << "Argent reads one YAML file (`--config`, default `configs/demo.yaml`). Keys are grouped "
        "in sections; a key missing from the file keeps the default below. Unknown keys and "
        "out-of-range values are rejected with the file and line.\n";
  std::string section;
  for (const Entry& e : schema()) {
    const std::string s = e.key.path.substr(0, e.key.path.find('.'));
    if (s != section) {
      section = s;
      md << "\n## `" << section << "`\n\n| key | type | default | meaning |\n|---|---|---|---|\n";
    }
    md << "| `" << e.key.path << "` | " << e.key.type << " | `" << e.key.default_value << "` | "
       << e.key.doc << " |\n";
  }
  return md.str();
}

}  // namespace argent
