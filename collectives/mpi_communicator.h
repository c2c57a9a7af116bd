// The MPI backend of Communicator: host buffers, nonblocking MPI calls polled against a timeout.
#pragma once

#include <mpi.h>

#include "collectives/communicator.h"

namespace argent {

// Initializes MPI for a process whose collectives are called from one thread (others may run,
// but only the thread that called this one calls MPI) and finalizes it on destruction.
class MpiSession {
 public:
  MpiSession(int* argc, char*** argv);
  ~MpiSession();
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;
};

class MpiCommunicator final : public Communicator {
 public:
  // Works on a duplicate of `comm`, so its traffic cannot mix with the caller's.
  explicit MpiCommunicator(MPI_Comm comm, CollectiveTimeout timeout = CollectiveTimeout(60000));
  ~MpiCommunicator() override;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int local_rank() const override { return local_rank_; }
  MemoryKind memory() const override { return MemoryKind::kHost; }
  std::string backend() const override { return "mpi"; }

  using Communicator::broadcast;
  void broadcast(void* data, size_t bytes, int root, CollectiveTimeout timeout) override;
  void all_gather(const void* send, void* recv, size_t bytes) override;
  void all_gather_v(const void* send, void* recv, const std::vector<size_t>& counts) override;
  void send(const void* data, size_t bytes, int peer) override;
  void recv(void* data, size_t bytes, int peer) override;
  void barrier() override;

  MPI_Comm comm() const { return comm_; }

 private:
  // Polls `request` until it completes; past `timeout` logs the operation and throws
  // Error(kUnavailable).
  void wait(MPI_Request* request, const char* op, CollectiveTimeout timeout,
            MPI_Status* status = MPI_STATUS_IGNORE);

  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1, local_rank_ = 0;
};

}  // namespace argent
