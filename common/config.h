// Argent's configuration: one YAML file (configs/demo.yaml is the default), validated against a
// schema that is also the source of docs/configuration.md (`argent config-doc`), so the two
// cannot drift. Unknown keys, wrong types and out-of-range values are errors naming the key,
// the file and the line.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace argent {

struct IndexConfig {
  std::string dir = "argent-index";
  int32_t partitions = 64;
  int64_t nlist = 0;  // 0: automatic, about 4 * sqrt(items)
  bool normalize = true;
  int32_t kmeans_iterations = 10;
  int64_t kmeans_points_per_list = 64;
  int32_t bloom_bits = 128;
  int32_t bloom_hashes = 3;
  double list_slack = 0.10;
  uint64_t seed = 42;
};

struct SearchConfig {
  int64_t k = 100;
  int32_t nprobe = 32;
  int32_t batch = 64;
  int64_t max_k = 100000;
  int32_t threads = 0;
  std::string device = "cpu";  // cpu | cuda: where each shard scans (kernels/cpu or kernels/cuda)
  std::string module;  // a saved TorchScript ArgentRetrieval (python/argent/torch.py) that scans
  int64_t filter_cache_mb = 256;  // exact eligibility of recurring filters, per shard copy
};

struct SyntheticConfig {
  int64_t clusters = 1000;
  double cluster_spread = 0.35;
  int32_t feature_ids = 8;
  int32_t features_per_item = 6;
  int64_t values_per_feature = 1000;
  double zipf_exponent = 1.1;
};

// `argent serve`: the gateway, dynamic batching and the collectives.
struct ServeConfig {
  std::string endpoint = "tcp://127.0.0.1:5555";
  std::string backend = "cpu";  // "cpu": MPI collectives; "cuda": NCCL collectives on the GPU
  bool coordinator_serves = true;
  int32_t max_batch = 64;
  int64_t max_wait_us = 2000;
  int64_t max_queue = 4096;
  // Bytes of decoded requests the search queue, and separately the write queue, hold at most,
  // from admission until answered (coordinator/queue_budget.h); docs/reliability.md.
  int64_t max_queue_bytes = int64_t(32) << 20;
  int64_t max_message_bytes = 1 << 22;
  int64_t default_timeout_ms = 10000;
  int64_t collective_timeout_ms = 60000;
  double stats_interval_s = 1.0;
  // Cluster faults (docs/reliability.md, "Cluster faults"): the watchdog's deadlines.
  int64_t step_timeout_ms = 10000;
  int64_t snapshot_timeout_ms = 600000;
  int64_t heartbeat_ms = 1000;
  int64_t abort_grace_ms = 500;
  // Rebalancing (docs/architecture.md, "Rebalancing").
  std::vector<int64_t> standby_ranks;  // ranks that start with no partitions
  int64_t move_chunk_bytes = int64_t(1) << 22;  // bytes of a partition sent per move step
};

// The coordinator's multi-task reranker (docs/architecture.md, "Reranking"). The structure keys
// (tasks, hidden, activation) describe the model file and are checked against it at load.
struct RerankConfig {
  bool enabled = false;
  std::string model;  // TorchScript file written by python/train_reranker.py
  std::vector<std::string> tasks = {"click", "like", "share", "watch"};
  std::vector<int64_t> hidden = {256, 128};
  std::string activation = "relu";
  std::vector<double> task_weights;     // empty: the value weights stored in the model file
  double retrieval_score_weight = 0.0;  // used with task_weights
  int64_t depth = 1000;                 // candidates reranked per query (a request may override)
  int64_t chunk_rows = 65536;           // candidates scored per forward pass: bounds memory
  std::string device = "auto";          // auto: CUDA when LibTorch sees a GPU, else CPU
};

// Streaming updates: the write-ahead log, snapshots and compaction (docs/architecture.md).
struct UpdatesConfig {
  int64_t max_request_items = 10000;
  int64_t max_step_items = 8192;
  double snapshot_interval_s = 3600;
  int64_t snapshot_wal_bytes = int64_t(1) << 30;
  double compact_tombstone_ratio = 0.25;
};

// The gateway's defences (docs/reliability.md, "Gateway"): socket limits, per-request caps checked
// before a request's data is copied, and CURVE authentication with an allow-list of client keys.
struct GatewayConfig {
  bool auth = false;              // CURVE + allow-list; configs/deploy.yaml turns it on
  std::string server_key;         // the server's key pair file (`argent admin keygen`)
  std::string allow_list;         // "<public key> <query|admin>" per line
  double allow_list_check_s = 1.0;  // reload the allow-list when its mtime changes (and on SIGHUP)
  int64_t send_hwm = 1000;        // replies queued per client before further ones are dropped
  int64_t receive_hwm = 1000;     // requests queued per client inside ZeroMQ
  int64_t handshake_ms = 5000;    // a connection must finish its handshake in this time
  int64_t max_frames = 4;         // frames in one request message (routing envelope included)
  int64_t max_exclude_ids = 100000;
  int64_t max_rerank_depth = 100000;
  int64_t max_filter_chars = 65536;
  int64_t max_filter_depth = 64;
  int64_t max_item_features = 4096;  // (feature, value) pairs per upserted item
  int64_t log_rejections_per_s = 10;
};

// The coordinator's Prometheus endpoint (docs/operations.md, "Metrics").
struct MetricsConfig {
  std::string endpoint;  // HOST:PORT of the /metrics HTTP endpoint; empty or port 0: off
};

struct Config {
  IndexConfig index;
  SearchConfig search;
  SyntheticConfig synthetic;
  ServeConfig serve;
  RerankConfig rerank;
  UpdatesConfig updates;
  GatewayConfig gateway;
  MetricsConfig metrics;
};

// One documented key of the schema.
struct ConfigKey {
  std::string path;         // "search.nprobe"
  std::string type;         // "int", "float", "bool", "string"
  std::string default_value;
  std::string doc;
};

// Loads and validates `path`; keys not in the file keep their defaults.
Config load_config(const std::string& path);
// The same for YAML text (tests); `origin` names it in errors.
Config parse_config(const std::string& yaml_text, const std::string& origin);
// Every key, in schema order, with its default.
std::vector<ConfigKey> config_schema();
// docs/configuration.md, rendered from the schema.
std::string config_markdown();

}  // namespace argent
