#include "collectives/make_communicator.h"

#include "common/error.h"

#if defined(ARGENT_WITH_NCCL)
#include "collectives/nccl_communicator.h"
#endif

namespace argent {

bool nccl_backend_available() {
#if defined(ARGENT_WITH_NCCL)
  return true;
#else
  return false;
#endif
}

std::unique_ptr<Communicator> make_communicator(const std::string& backend,
                                                MpiCommunicator& bootstrap,
                                                CollectiveTimeout timeout) {
  if (backend == "cpu") return std::make_unique<MpiCommunicator>(bootstrap.comm(), timeout);
  if (backend == "cuda") {
#if defined(ARGENT_WITH_NCCL)
    return std::make_unique<NcclCommunicator>(bootstrap, timeout);
#else
    ARGENT_CHECK(false, "serve.backend = cuda, but this build of Argent has no CUDA/NCCL backend "
                        "(configure with -DARGENT_CUDA=ON on a machine with nvcc and NCCL)");
#endif
  }
  ARGENT_CHECK(false, "unknown collectives backend '", backend, "' (expected cpu or cuda)");
}

}  // namespace argent
