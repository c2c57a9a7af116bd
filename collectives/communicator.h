// The collectives every rank of an Argent job uses: one interface, two backends.
//
//   MpiCommunicator   host buffers, MPI (the CPU backend, and the bootstrap of the NCCL one)
//   NcclCommunicator  CUDA device buffers, NCCL on the GPU of the rank's node-local rank
//
// Buffers passed to a communicator live where memory() says. Every call checks the backend's
// result, and every call but those given kNoTimeout must finish within the communicator's
// timeout: a collective that does not (a rank died or diverged) throws Error(kUnavailable) with
// a message naming the operation and the rank, instead of hanging it. A serving rank waits for
// its next step with its own deadline (serve.heartbeat_ms + serve.step_timeout_ms), and a
// watchdog thread (coordinator/watchdog.h) bounds every step.
#pragma once

#include <ATen/ATen.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace argent {

enum class MemoryKind { kHost, kCuda };

using CollectiveTimeout = std::chrono::milliseconds;
constexpr CollectiveTimeout kNoTimeout{-1};

class Communicator {
 public:
  virtual ~Communicator() = default;

  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual int local_rank() const = 0;   // rank among the ranks of this node
  virtual MemoryKind memory() const = 0;
  virtual std::string backend() const = 0;  // "mpi" or "nccl"

  // Copies `bytes` at `data` on `root` to `data` on every rank.
  virtual void broadcast(void* data, size_t bytes, int root,
                         CollectiveTimeout timeout) = 0;
  void broadcast(void* data, size_t bytes, int root) { broadcast(data, bytes, root, timeout_); }

  // Every rank contributes `bytes`; `recv` receives size() * bytes, in rank order.
  virtual void all_gather(const void* send, void* recv, size_t bytes) = 0;

  // Rank r contributes counts[r] bytes (every rank passes the same counts); `recv` receives them
  // back to back in rank order.
  virtual void all_gather_v(const void* send, void* recv, const std::vector<size_t>& counts) = 0;

  // The same two collectives on host buffers, for data that lives on the host (step payloads,
  // result blocks): the host backend runs them in place, the NCCL backend stages them through
  // device memory so that the transfer itself still goes over NCCL.
  virtual void broadcast_host(void* data, size_t bytes, int root) { broadcast(data, bytes, root); }
  virtual void all_gather_host(const void* send, void* recv, size_t bytes) {
    all_gather(send, recv, bytes);
  }

  virtual void send(const void* data, size_t bytes, int peer) = 0;
  virtual void recv(void* data, size_t bytes, int peer) = 0;
  virtual void barrier() = 0;

  // For a watchdog thread (any thread, while another may be inside a collective): the
  // backend's asynchronous error ("" when none; NCCL: ncclCommGetAsyncError), and an abort that
  // makes every pending and later call fail instead of hang (NCCL: ncclCommAbort). MPI has
  // neither: its calls are polled against their timeout, and the process exits to abort.
  virtual std::string async_error() { return ""; }
  virtual void abort() noexcept {}

  CollectiveTimeout timeout() const { return timeout_; }
  void set_timeout(CollectiveTimeout timeout) { timeout_ = timeout; }

 protected:
  CollectiveTimeout timeout_{60000};
};

// Tensor forms of the collectives. Tensors must be contiguous and on the communicator's memory
// (host for MPI, the rank's CUDA device for NCCL).
void broadcast_tensor(Communicator& comm, at::Tensor& tensor, int root);
// [size(), ...tensor.shape]
at::Tensor all_gather_tensor(Communicator& comm, const at::Tensor& tensor);
// Concatenation along dim 0 of every rank's tensor; the other dims must agree. `rows_per_rank`,
// when given, receives each rank's dim-0 size.
at::Tensor all_gather_rows(Communicator& comm, const at::Tensor& tensor,
                           std::vector<int64_t>* rows_per_rank = nullptr);

// The device tensors of a communicator live on.
at::Device communicator_device(const Communicator& comm);

}  // namespace argent
