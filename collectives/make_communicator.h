// Picks the collectives backend named by serve.backend.
#pragma once

#include <memory>
#include <string>

#include "collectives/mpi_communicator.h"

namespace argent {

// "cpu": an MpiCommunicator over `bootstrap`'s ranks; "cuda": an NcclCommunicator bootstrapped
// over it. Throws Error(kInvalidArgument) when this build has no NCCL backend.
std::unique_ptr<Communicator> make_communicator(const std::string& backend,
                                                MpiCommunicator& bootstrap,
                                                CollectiveTimeout timeout);

bool nccl_backend_available();

}  // namespace argent
