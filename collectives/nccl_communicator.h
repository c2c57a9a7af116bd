// The NCCL backend of Communicator: CUDA device buffers, one GPU per rank (the GPU of the rank's
// node-local rank), bootstrapped over MPI (rank 0 creates the unique id and broadcasts it).
//
// Operations are enqueued on the communicator's stream and then polled: the stream's progress
// and ncclCommGetAsyncError are checked until the operation completes, and past the timeout the
// communicator is aborted (ncclCommAbort) and the call throws, instead of hanging the rank.
// A watchdog thread may call async_error() and abort() while the rank's thread is inside a
// call: comm_mu_ orders every use of comm_ against the abort, which releases it.
#pragma once

#include <cuda_runtime_api.h>
#include <nccl.h>

#include <mutex>
#include <string>

#include "collectives/mpi_communicator.h"

namespace argent {

class NcclCommunicator final : public Communicator {
 public:
  // Collective over `bootstrap`'s ranks; selects device local_rank % device count.
  NcclCommunicator(MpiCommunicator& bootstrap, CollectiveTimeout timeout);
  ~NcclCommunicator() override;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int local_rank() const override { return local_rank_; }
  MemoryKind memory() const override { return MemoryKind::kCuda; }
  std::string backend() const override { return "nccl"; }
  int device() const { return device_; }
  cudaStream_t stream() const { return stream_; }

  using Communicator::broadcast;
  void broadcast(void* data, size_t bytes, int root, CollectiveTimeout timeout) override;
  void all_gather(const void* send, void* recv, size_t bytes) override;
  void all_gather_v(const void* send, void* recv, const std::vector<size_t>& counts) override;
  void broadcast_host(void* data, size_t bytes, int root) override;
  void all_gather_host(const void* send, void* recv, size_t bytes) override;
  void send(const void* data, size_t bytes, int peer) override;
  void recv(void* data, size_t bytes, int peer) override;
  void barrier() override;
  std::string async_error() override;
  void abort() noexcept override;

 private:
  // Waits for the work enqueued on stream_; aborts the communicator and throws on an NCCL
  // asynchronous error or past `timeout`.
  void wait(const char* op, CollectiveTimeout timeout);

  // Runs `enqueue` (NCCL calls on comm_) under comm_mu_, unless the communicator was aborted.
  template <typename Enqueue>
  void enqueue(const char* op, Enqueue&& enqueue);

  std::mutex comm_mu_;
  ncclComm_t comm_ = nullptr;  // GUARDED_BY(comm_mu_) once serving: abort() releases it
  cudaStream_t stream_ = nullptr;
  int rank_ = 0, size_ = 1, local_rank_ = 0, device_ = 0;
  bool aborted_ = false;  // GUARDED_BY(comm_mu_)
  void* barrier_word_ = nullptr;  // one float on the device, all-reduced by barrier()
  // Device staging buffer of the host-buffer collectives; grows to the largest call.
  uint8_t* scratch(size_t bytes);
  // Device -> host once the stream's collective has finished (checked by wait()).
  void copy_to_host(void* dst, const void* src, size_t bytes);
  void* scratch_ = nullptr;
  size_t scratch_bytes_ = 0;
};

}  // namespace argent
