// `argent serve`: every rank of an mpirun job runs run_server. Rank 0 is the coordinator: it runs
// the gateway, batches requests, drives the step loop and merges; every rank (rank 0 too, unless
// serve.coordinator_serves is false) searches the partitions the partition map gives it.
#pragma once

#include "collectives/communicator.h"
#include "collectives/mpi_communicator.h"
#include "common/config.h"

namespace argent {

// Asks a running server to shut down cleanly (async-signal-safe: SIGTERM/SIGINT handlers call it).
void request_server_shutdown();

// Serves until shutdown; returns the process exit status. `control` carries step headers (host,
// MPI); `data` carries step payloads and result blocks (MPI, or NCCL with serve.backend = cuda).
int run_server(const Config& config, MpiCommunicator& control, Communicator& data);

}  // namespace argent
