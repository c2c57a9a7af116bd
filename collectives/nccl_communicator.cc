#include "collectives/nccl_communicator.h"

#include <algorithm>
#include <thread>

#include "common/cuda_check.h"
#include "common/error.h"
#include "common/log.h"

namespace argent {
namespace {

#define ARGENT_NCCL_CHECK(call, op)                                                         \
  do {                                                                                      \
    const ncclResult_t argent_nccl_rc = (call);                                             \
    if (argent_nccl_rc != ncclSuccess && argent_nccl_rc != ncclInProgress)                  \
      ARGENT_THROW(ErrorCode::kInternal, "NCCL ", op, " failed: ",                          \
                   ncclGetErrorString(argent_nccl_rc));                                     \
  } while (0)

}  // namespace

NcclCommunicator::NcclCommunicator(MpiCommunicator& bootstrap, CollectiveTimeout timeout)
    : rank_(bootstrap.rank()), size_(bootstrap.size()), local_rank_(bootstrap.local_rank()) {
  timeout_ = timeout;
  int devices = 0;
  ARGENT_CUDA_CHECK(cudaGetDeviceCount(&devices));
  ARGENT_CHECK(devices > 0, "serve.backend = cuda, but rank ", rank_, " sees no CUDA device");
  device_ = local_rank_ % devices;
  ARGENT_CUDA_CHECK(cudaSetDevice(device_));
  ARGENT_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  ARGENT_CUDA_CHECK(cudaMalloc(&barrier_word_, sizeof(float)));

  ncclUniqueId id;
  if (rank_ == 0) ARGENT_NCCL_CHECK(ncclGetUniqueId(&id), "get_unique_id");
  bootstrap.broadcast(&id, sizeof(id), 0);
  ARGENT_NCCL_CHECK(ncclCommInitRank(&comm_, size_, id, rank_), "comm_init_rank");
  ARGENT_LOG(kInfo, "NCCL communicator: rank ", rank_, " of ", size_, " on CUDA device ", device_);
}

NcclCommunicator::~NcclCommunicator() {
  // After ncclCommAbort the communicator is already released.
  {
    std::lock_guard<std::mutex> lock(comm_mu_);
    if (comm_ && !aborted_) ncclCommDestroy(comm_);
  }
  if (barrier_word_) cudaFree(barrier_word_);
  if (scratch_) cudaFree(scratch_);
  if (stream_) cudaStreamDestroy(stream_);
}

std::string NcclCommunicator::async_error() {
  std::lock_guard<std::mutex> lock(comm_mu_);
  if (aborted_) return "NCCL communicator was aborted";
  ncclResult_t state = ncclSuccess;
  const ncclResult_t rc = ncclCommGetAsyncError(comm_, &state);
  if (rc != ncclSuccess) return std::string("ncclCommGetAsyncError: ") + ncclGetErrorString(rc);
  if (state != ncclSuccess && state != ncclInProgress) return ncclGetErrorString(state);
  return "";
}

void NcclCommunicator::abort() noexcept {
  std::lock_guard<std::mutex> lock(comm_mu_);
  if (aborted_ || comm_ == nullptr) return;
  // Makes the kernels of pending operations return and releases the communicator; peers see
  // their collectives with this rank fail (their own watchdogs then abort them too).
  ncclCommAbort(comm_);
  aborted_ = true;
}

template <typename Enqueue>
void NcclCommunicator::enqueue(const char* op, Enqueue&& enqueue) {
  std::lock_guard<std::mutex> lock(comm_mu_);
  ARGENT_CHECK(!aborted_, "NCCL ", op, ": the communicator was aborted");
  enqueue();
}

void NcclCommunicator::wait(const char* op, CollectiveTimeout timeout) {
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  auto sleep = std::chrono::microseconds(2);
  for (;;) {
    const cudaError_t state = cudaStreamQuery(stream_);
    if (state == cudaSuccess) return;
    if (state != cudaErrorNotReady) {
      ARGENT_THROW(ErrorCode::kInternal, "NCCL ", op, ": CUDA stream failed: ",
                   cudaGetErrorString(state));
    }
    const std::string async = async_error();
    if (!async.empty()) {
      abort();
      ARGENT_THROW(ErrorCode::kUnavailable, "NCCL ", op, " failed asynchronously on rank ", rank_,
                   ": ", async, "; communicator aborted");
    }
    if (timeout >= CollectiveTimeout::zero() && Clock::now() - start > timeout) {
      abort();
      ARGENT_THROW(ErrorCode::kUnavailable, "NCCL ", op, " did not finish within ",
                   timeout.count(), " ms on rank ", rank_, " of ", size_,
                   ": a rank died or the ranks diverged; communicator aborted");
    }
    std::this_thread::sleep_for(sleep);
    sleep = std::min(sleep * 2, std::chrono::microseconds(timeout < CollectiveTimeout::zero() ? 1000 : 50));
  }
}

void NcclCommunicator::broadcast(void* data, size_t bytes, int root, CollectiveTimeout timeout) {
  enqueue("broadcast", [&] {
    ARGENT_NCCL_CHECK(ncclBroadcast(data, data, bytes, ncclUint8, root, comm_, stream_),
                      "broadcast");
  });
  wait("broadcast", timeout);
}

void NcclCommunicator::all_gather(const void* send, void* recv, size_t bytes) {
  enqueue("all_gather", [&] {
    ARGENT_NCCL_CHECK(ncclAllGather(send, recv, bytes, ncclUint8, comm_, stream_), "all_gather");
  });
  wait("all_gather", timeout_);
}

void NcclCommunicator::all_gather_v(const void* send, void* recv,
                                    const std::vector<size_t>& counts) {
  ARGENT_CHECK(int(counts.size()) == size_, "all_gather_v: ", counts.size(), " counts for ",
               size_, " ranks");
  // NCCL has no all-gather-v: one broadcast per rank, grouped into a single launch.
  enqueue("all_gather_v", [&] {
    size_t offset = 0;
    ARGENT_NCCL_CHECK(ncclGroupStart(), "group_start");
    for (int r = 0; r < size_; ++r) {
      uint8_t* dst = static_cast<uint8_t*>(recv) + offset;
      const void* src = r == rank_ ? send : dst;
      ARGENT_NCCL_CHECK(ncclBroadcast(src, dst, counts[size_t(r)], ncclUint8, r, comm_, stream_),
                        "all_gather_v");
      offset += counts[size_t(r)];
    }
    ARGENT_NCCL_CHECK(ncclGroupEnd(), "group_end");
  });
  wait("all_gather_v", timeout_);
}

uint8_t* NcclCommunicator::scratch(size_t bytes) {
  if (bytes > scratch_bytes_) {
    if (scratch_) ARGENT_CUDA_CHECK(cudaFree(scratch_));
    scratch_ = nullptr;
    scratch_bytes_ = 0;
    ARGENT_CUDA_CHECK(cudaMalloc(&scratch_, bytes));
    scratch_bytes_ = bytes;
  }
  return static_cast<uint8_t*>(scratch_);
}

void NcclCommunicator::broadcast_host(void* data, size_t bytes, int root) {
  uint8_t* staged = scratch(std::max<size_t>(bytes, 1));
  if (rank_ == root)
    ARGENT_CUDA_CHECK(cudaMemcpyAsync(staged, data, bytes, cudaMemcpyHostToDevice, stream_));
  enqueue("broadcast", [&] {
    ARGENT_NCCL_CHECK(ncclBroadcast(staged, staged, bytes, ncclUint8, root, comm_, stream_),
                      "broadcast");
  });
  // The copy back waits for the collective first: a copy into pageable memory returns only when
  // done, so queued behind the broadcast it would block past wait()'s timeout and error checks.
  wait("broadcast", timeout_);
  if (rank_ != root) copy_to_host(data, staged, bytes);
}

void NcclCommunicator::all_gather_host(const void* send, void* recv, size_t bytes) {
  uint8_t* staged = scratch(std::max<size_t>(bytes * size_t(size_), 1));
  uint8_t* mine = staged + bytes * size_t(rank_);
  ARGENT_CUDA_CHECK(cudaMemcpyAsync(mine, send, bytes, cudaMemcpyHostToDevice, stream_));
  // In place: each rank's contribution already sits at its offset of the output.
  enqueue("all_gather", [&] {
    ARGENT_NCCL_CHECK(ncclAllGather(mine, staged, bytes, ncclUint8, comm_, stream_), "all_gather");
  });
  wait("all_gather", timeout_);  // before the copy back, as in broadcast_host
  copy_to_host(recv, staged, bytes * size_t(size_));
}

void NcclCommunicator::copy_to_host(void* dst, const void* src, size_t bytes) {
  ARGENT_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream_));
  ARGENT_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

void NcclCommunicator::send(const void* data, size_t bytes, int peer) {
  enqueue("send", [&] {
    ARGENT_NCCL_CHECK(ncclSend(data, bytes, ncclUint8, peer, comm_, stream_), "send");
  });
  wait("send", timeout_);
}

void NcclCommunicator::recv(void* data, size_t bytes, int peer) {
  enqueue("recv", [&] {
    ARGENT_NCCL_CHECK(ncclRecv(data, bytes, ncclUint8, peer, comm_, stream_), "recv");
  });
  wait("recv", timeout_);
}

void NcclCommunicator::barrier() {
  enqueue("barrier", [&] {
    ARGENT_NCCL_CHECK(
        ncclAllReduce(barrier_word_, barrier_word_, 1, ncclFloat, ncclSum, comm_, stream_),
        "barrier");
  });
  wait("barrier", timeout_);
}

}  // namespace argent
