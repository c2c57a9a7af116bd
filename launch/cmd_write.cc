// argent upsert / argent delete: write to a running server through its gateway. Each exits 0
// only once every request was acknowledged (durable in the server's write-ahead log and
// visible to searches); any rejected or unanswered request makes it exit non-zero.
// `argent upsert --random N` is also the update load generator of docs/benchmarks.md.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/error.h"
#include "coordinator/client.h"
#include "launch/client_keys_option.h"
#include "launch/commands.h"

namespace argent {
namespace {

struct WriteArgs {
  std::string endpoint = "tcp://127.0.0.1:5555", items, ids, ids_file, summary_json;
  int64_t batch = 1000, random = 0, id_base = int64_t(1) << 40, seed = 1;
  int concurrency = 1;
  int64_t timeout_ms = 60000;
  double rate = 0;  // items per second over all threads; 0: as fast as acknowledged
  ClientKeyOption keys;
};

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t rank = size_t(std::ceil(p * double(v.size())));
  return v[std::min(v.size() - 1, rank == 0 ? 0 : rank - 1)];
}

int64_t json_int(const nlohmann::json& v, const std::string& where) {
  ARGENT_CHECK(v.is_number_integer(), where, ": expected an integer, got ", v.dump());
  return v.get<int64_t>();
}

// One JSON line {"id": 7, "embedding": [...], "features": {"3": [100, 101], "5": 2}}.
v1::Item parse_item_line(const std::string& line, const std::string& where) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(line);
  } catch (const nlohmann::json::exception& e) {
    ARGENT_CHECK(false, where, ": not valid JSON: ", e.what());
  }
  ARGENT_CHECK(j.is_object() && j.contains("id") && j.contains("embedding"), where,
               ": expected {\"id\": ..., \"embedding\": [...], \"features\": {...}}");
  v1::Item item;
  item.set_id(json_int(j["id"], where + " id"));
  ARGENT_CHECK(j["embedding"].is_array(), where, ": \"embedding\" must be an array of numbers");
  for (const auto& x : j["embedding"]) {
    ARGENT_CHECK(x.is_number(), where, ": embedding value ", x.dump(), " is not a number");
    item.add_embedding(x.get<float>());
  }
  if (j.contains("features")) {
    ARGENT_CHECK(j["features"].is_object(), where,
                 ": \"features\" must be an object of feature id -> values");
    for (const auto& [key, values] : j["features"].items()) {
      int32_t feature = -1;
      try {
        size_t used = 0;
        const long parsed = std::stol(key, &used);
        if (used == key.size() && parsed >= 0 && parsed <= INT32_MAX) feature = int32_t(parsed);
      } catch (const std::exception&) {
      }
      ARGENT_CHECK(feature >= 0, where, ": feature id \"", key, "\" is not an int32 >= 0");
      v1::FeatureValues& fv = (*item.mutable_features())[feature];
      if (values.is_array()) {
        for (const auto& v : values) fv.add_values(json_int(v, where + " value"));
      } else {
        fv.add_values(json_int(values, where + " value"));
      }
    }
  }
  return item;
}

std::vector<v1::Request> upserts_from_file(const std::string& path, int64_t batch) {
  std::ifstream in(path);
  ARGENT_CHECK(in.good(), "upsert: cannot open ", path);
  std::vector<v1::Request> out;
  std::string line;
  for (int64_t line_no = 1; std::getline(in, line); ++line_no) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    if (out.empty() || out.back().upsert().items_size() >= batch) out.emplace_back().mutable_upsert();
    *out.back().mutable_upsert()->add_items() =
        parse_item_line(line, path + ":" + std::to_string(line_no));
  }
  ARGENT_CHECK(!out.empty(), "upsert: ", path, " holds no items");
  return out;
}

// Request `r` of the random load (items [r * batch, (r + 1) * batch) of --random): standard
// normal embeddings and 4 features of 1000 values each, seeded per request so that requests can
// be made lazily, in any order, by any thread.
v1::Request random_upsert(const WriteArgs& a, int dim, int64_t r) {
  std::mt19937_64 rng(uint64_t(a.seed) * 0x9E3779B97F4A7C15ull + uint64_t(r));
  std::normal_distribution<float> normal;
  v1::Request out;
  for (int64_t i = r * a.batch; i < std::min(a.random, (r + 1) * a.batch); ++i) {
    v1::Item* item = out.mutable_upsert()->add_items();
    item->set_id(a.id_base + i);
    for (int j = 0; j < dim; ++j) item->add_embedding(normal(rng));
    for (int32_t f = 0; f < 4; ++f) (*item->mutable_features())[f].add_values(int64_t(rng() % 1000));
  }
  return out;
}

int64_t items_of(const v1::Request& r) {
  return r.has_upsert() ? r.upsert().items_size() : r.delete_().ids_size();
}

std::vector<int64_t> parse_ids(std::string text, const std::string& where) {
  // Commas separate ids: two with nothing but space between them (or one at either end) is a
  // mistake such as "7,,9", not an id to skip.
  bool after_comma = true;  // the start counts as one: ",7" has an empty first id
  for (const char c : text) {
    if (c == ',') ARGENT_CHECK(!after_comma, where, ": an empty id between commas in '", text, "'");
    if (c == ',') after_comma = true;
    else if (!std::isspace(static_cast<unsigned char>(c))) after_comma = false;
  }
  ARGENT_CHECK(!after_comma || text.find(',') == std::string::npos, where,
               ": a comma with no id after it in '", text, "'");
  std::replace(text.begin(), text.end(), ',', ' ');
  std::vector<int64_t> ids;
  std::stringstream words(text);
  std::string w;
  while (words >> w) {
    size_t used = 0;
    int64_t id = 0;
    try {
      id = std::stoll(w, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    ARGENT_CHECK(used == w.size() && used > 0, where, ": '", w, "' is not an integer id");
    ids.push_back(id);
  }
  return ids;
}

// Sends requests make(0) .. make(n - 1) from `concurrency` threads (one client each, one request
// in flight per thread; with concurrency 1 they go in order) and reports. Returns the exit
// status.
int send_all(const WriteArgs& a, const char* what, size_t n,
             const std::function<v1::Request(size_t)>& make) {
  ARGENT_CHECK(a.concurrency >= 1 && a.concurrency <= 1024, "--concurrency ", a.concurrency,
               " is outside [1, 1024]");
  std::vector<double> latency(n, -1);
  std::atomic<size_t> next{0};
  std::atomic<int64_t> errors{0}, applied{0}, items{0};
  std::mutex print;
  const auto begin = std::chrono::steady_clock::now();
  auto worker = [&] {
    Client client(a.endpoint, a.keys.load());
    for (;;) {
      const size_t i = next.fetch_add(1);
      if (i >= n) return;
      const v1::Request request = make(i);
      if (a.rate > 0)  // request i leaves at its slot of an even schedule of --rate items/s
        std::this_thread::sleep_until(
            begin + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                        std::chrono::duration<double>(double(i) * double(a.batch) / a.rate)));
      items += items_of(request);
      const auto start = std::chrono::steady_clock::now();
      std::string problem;
      try {
        const v1::Response r = client.call(request, std::chrono::milliseconds(a.timeout_ms));
        const v1::Status& s = r.has_mutation() ? r.mutation().status() : r.error();
        if (s.code() == v1::OK && r.has_mutation()) {
          applied += r.mutation().applied();
        } else {
          problem = v1::StatusCode_Name(s.code()) + ": " + s.message();
        }
      } catch (const Error& e) {
        problem = e.what();
      }
      if (!problem.empty()) {
        ++errors;
        std::lock_guard<std::mutex> lock(print);
        std::fprintf(stderr, "%s: request %zu not acknowledged: %s\n", what, i, problem.c_str());
        continue;
      }
      latency[i] = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    }
  };
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (int t = 0; t < a.concurrency; ++t) threads.emplace_back(worker);
  for (std::thread& t : threads) t.join();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::vector<double> ok;
  for (double l : latency)
    if (l >= 0) ok.push_back(l);
  const double rate = double(items.load()) / seconds;
  std::fprintf(stderr,
               "%s: %lld items in %zu requests, %lld applied, concurrency %d, %.2f s: %.1f items/s, "
               "ack latency p50 %.2f ms, p99 %.2f ms, %lld errors\n",
               what, (long long)items.load(), n, (long long)applied.load(), a.concurrency,
               seconds, rate, percentile(ok, 0.5), percentile(ok, 0.99), (long long)errors.load());
  if (!a.summary_json.empty()) {
    std::ofstream out(a.summary_json);
    ARGENT_CHECK(out.good(), "cannot write ", a.summary_json);
    out << nlohmann::json{{"operation", what},        {"items", items.load()},
                          {"requests", n}, {"applied", applied.load()},
                          {"concurrency", a.concurrency}, {"seconds", seconds},
                          {"items_per_s", rate},       {"p50_ms", percentile(ok, 0.5)},
                          {"p99_ms", percentile(ok, 0.99)}, {"errors", errors.load()}}
               .dump()
        << "\n";
  }
  return errors.load() == 0 ? 0 : 1;
}

int run_upsert(const WriteArgs& a) {
  ARGENT_CHECK(a.items.empty() != (a.random == 0), "give exactly one of --items or --random");
  ARGENT_CHECK(a.batch >= 1, "--batch ", a.batch, " must be >= 1");
  if (!a.items.empty()) {
    const std::vector<v1::Request> requests = upserts_from_file(a.items, a.batch);
    return send_all(a, "upsert", requests.size(), [&](size_t i) { return requests[i]; });
  }
  Client probe(a.endpoint, a.keys.load());
  ARGENT_CHECK(probe.wait_until_healthy(std::chrono::milliseconds(10000)), "no healthy server at ",
               a.endpoint, " within 10 s");
  v1::Request health;
  health.mutable_health();
  const int dim = probe.call(health).health().dim();
  return send_all(a, "upsert", size_t((a.random + a.batch - 1) / a.batch),
                  [&](size_t i) { return random_upsert(a, dim, int64_t(i)); });
}

int run_delete(const WriteArgs& a) {
  ARGENT_CHECK(a.ids.empty() != a.ids_file.empty(), "give exactly one of --ids or --ids-file");
  ARGENT_CHECK(a.batch >= 1, "--batch ", a.batch, " must be >= 1");
  std::vector<int64_t> ids;
  if (!a.ids.empty()) {
    ids = parse_ids(a.ids, "--ids");
  } else {
    std::ifstream in(a.ids_file);
    ARGENT_CHECK(in.good(), "delete: cannot open ", a.ids_file);
    std::stringstream text;
    text << in.rdbuf();
    ids = parse_ids(text.str(), a.ids_file);
  }
  ARGENT_CHECK(!ids.empty(), "delete: no ids given");
  std::vector<v1::Request> requests;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i % size_t(a.batch) == 0) requests.emplace_back().mutable_delete_();
    requests.back().mutable_delete_()->add_ids(ids[i]);
  }
  return send_all(a, "delete", requests.size(), [&](size_t i) { return requests[i]; });
}

void add_common(CLI::App* c, WriteArgs& a) {
  c->add_option("--endpoint", a.endpoint, "Gateway endpoint")->capture_default_str();
  a.keys.add_to(c);
  c->add_option("--batch", a.batch, "Items (ids) per request; each request is atomic")
      ->capture_default_str();
  c->add_option("--concurrency", a.concurrency,
                "Requests in flight (one client thread each); 1 keeps file order")
      ->capture_default_str();
  c->add_option("--timeout-ms", a.timeout_ms, "Give up on a request's ack after this long")
      ->capture_default_str()
      ->check(at_least(1));
  c->add_option("--summary-json", a.summary_json, "Write items/s and ack latencies as JSON");
  c->add_option("--rate", a.rate, "Pace requests to this many items/s in all (0: no pacing)")
      ->capture_default_str();
}

}  // namespace

CommandFn add_upsert_command(CLI::App& app) {
  auto a = std::make_shared<WriteArgs>();
  CLI::App* c = app.add_subcommand(
      "upsert", "Insert or replace items in a running server; exits 0 once all are acknowledged");
  add_common(c, *a);
  c->add_option("--items", a->items,
                "JSON Lines, one item a line: {\"id\": 7, \"embedding\": [...], \"features\": "
                "{\"3\": [100]}}")
      ->check(CLI::ExistingFile);
  c->add_option("--random", a->random, "Load generator: upsert this many random items instead");
  c->add_option("--id-base", a->id_base, "First id of --random items")->capture_default_str();
  c->add_option("--seed", a->seed, "Seed of --random items")->capture_default_str();
  return [a] { return run_upsert(*a); };
}

CommandFn add_delete_command(CLI::App& app) {
  auto a = std::make_shared<WriteArgs>();
  CLI::App* c = app.add_subcommand(
      "delete", "Delete items from a running server; exits 0 once all are acknowledged");
  add_common(c, *a);
  c->add_option("--ids", a->ids, "Comma-separated ids, e.g. 7,8,9");
  c->add_option("--ids-file", a->ids_file, "File of ids, separated by commas, spaces or lines")
      ->check(CLI::ExistingFile);
  return [a] { return run_delete(*a); };
}

}  // namespace argent
