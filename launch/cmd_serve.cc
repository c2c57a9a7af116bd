// argent serve: one rank of the serving job; start it with mpirun (launch/demo-cluster.sh).
#include <csignal>
#include <memory>
#include <string>

#include "collectives/make_communicator.h"
#include "common/error.h"
#include "common/log.h"
#include "coordinator/server.h"
#include "coordinator/zap_handler.h"
#include "launch/commands.h"

namespace argent {
namespace {

struct ServeArgs {
  ConfigOption config;
  std::string index, endpoint, metrics_endpoint, backend, device, rerank_model, log_level = "info";
  bool metrics_endpoint_set = false;
};

extern "C" void on_shutdown_signal(int) { request_server_shutdown(); }
extern "C" void on_reload_signal(int) { request_allow_list_reload(); }

int run_serve(const ServeArgs& a) {
  Config cfg = a.config.load();
  if (!a.index.empty()) cfg.index.dir = a.index;
  if (!a.endpoint.empty()) cfg.serve.endpoint = a.endpoint;
  if (a.metrics_endpoint_set) cfg.metrics.endpoint = a.metrics_endpoint;
  if (!a.rerank_model.empty()) {
    cfg.rerank.enabled = true;
    cfg.rerank.model = a.rerank_model;
  }
  if (!a.backend.empty()) {
    ARGENT_CHECK(a.backend == "cpu" || a.backend == "cuda", "--backend '", a.backend,
                 "' is not one of: cpu, cuda");
    cfg.serve.backend = a.backend;
  }
  if (!a.device.empty()) cfg.search.device = a.device;
  MpiSession mpi(nullptr, nullptr);
  const CollectiveTimeout timeout(cfg.serve.collective_timeout_ms);
  MpiCommunicator world(MPI_COMM_WORLD, timeout);
  init_logging(a.log_level, world.rank());
  std::signal(SIGTERM, on_shutdown_signal);
  std::signal(SIGINT, on_shutdown_signal);
  std::signal(SIGHUP, on_reload_signal);  // gateway.allow_list is read again
  try {
    std::unique_ptr<Communicator> data = make_communicator(cfg.serve.backend, world, timeout);
    return run_server(cfg, world, *data);
  } catch (const std::exception& e) {
    // One rank failing leaves the others waiting in a collective: end the whole job now.
    ARGENT_LOG(kCritical, "rank ", world.rank(), ": ", e.what());
    std::fprintf(stderr, "argent: error: rank %d: %s\n", world.rank(), e.what());
    MPI_Abort(MPI_COMM_WORLD, 2);
    return 2;
  }
}

}  // namespace

CommandFn add_serve_command(CLI::App& app) {
  auto a = std::make_shared<ServeArgs>();
  CLI::App* c = app.add_subcommand(
      "serve", "Serve an index: run under mpirun; rank 0 coordinates and runs the gateway");
  a->config.add_to(c);
  c->add_option("--index", a->index, "Index directory (overrides index.dir)")
      ->check(CLI::ExistingDirectory);
  c->add_option("--endpoint", a->endpoint, "Gateway endpoint (overrides serve.endpoint)");
  c->add_option("--metrics-endpoint", a->metrics_endpoint,
                "Prometheus endpoint HOST:PORT (overrides metrics.endpoint; \"\" or port 0: none)")
      ->each([a](const std::string&) { a->metrics_endpoint_set = true; });
  c->add_option("--backend", a->backend, "Collectives: cpu (MPI) or cuda (NCCL)");
  c->add_option("--device", a->device,
                "Where each rank scans its shard: cpu or cuda (overrides search.device)");
  c->add_option("--rerank-model", a->rerank_model,
                "Rerank with this model file (sets rerank.enabled and rerank.model)")
      ->check(CLI::ExistingFile);
  c->add_option("--log-level,--serve-log-level", a->log_level,
                "Server log level (trace, debug, info, warn, error); info logs a stats line "
                "every serve.stats_interval_s")
      ->capture_default_str();
  return [a] { return run_serve(*a); };
}

}  // namespace argent
