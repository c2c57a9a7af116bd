#include "collectives/mpi_communicator.h"

#include <algorithm>
#include <climits>
#include <thread>

#include "common/error.h"
#include "common/log.h"

namespace argent {
namespace {

std::string mpi_error_string(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(code, text, &length);
  return std::string(text, size_t(length));
}

#define ARGENT_MPI_CHECK(call, op)                                                        \
  do {                                                                                    \
    const int argent_mpi_rc = (call);                                                     \
    if (argent_mpi_rc != MPI_SUCCESS)                                                     \
      ARGENT_THROW(ErrorCode::kInternal, "MPI ", op, " failed: ", mpi_error_string(argent_mpi_rc)); \
  } while (0)

// MPI counts are ints: every call here moves fewer than 2^31 bytes per rank.
int byte_count(size_t bytes, const char* op) {
  ARGENT_CHECK(bytes <= size_t(INT_MAX), "MPI ", op, ": ", bytes,
               " bytes exceed the 2^31-1 bytes one call can move");
  return int(bytes);
}

}  // namespace

MpiSession::MpiSession(int* argc, char*** argv) {
  int provided = 0;
  ARGENT_MPI_CHECK(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided), "init");
  ARGENT_CHECK(provided >= MPI_THREAD_FUNNELED, "MPI provides thread level ", provided,
               ", Argent needs MPI_THREAD_FUNNELED");
  // Errors come back as codes that ARGENT_MPI_CHECK turns into exceptions, not as aborts.
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
}

MpiSession::~MpiSession() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

MpiCommunicator::MpiCommunicator(MPI_Comm comm, CollectiveTimeout timeout) {
  timeout_ = timeout;
  ARGENT_MPI_CHECK(MPI_Comm_dup(comm, &comm_), "comm_dup");
  MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
  ARGENT_MPI_CHECK(MPI_Comm_rank(comm_, &rank_), "comm_rank");
  ARGENT_MPI_CHECK(MPI_Comm_size(comm_, &size_), "comm_size");
  MPI_Comm node = MPI_COMM_NULL;
  ARGENT_MPI_CHECK(MPI_Comm_split_type(comm_, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node),
                   "comm_split_type");
  ARGENT_MPI_CHECK(MPI_Comm_rank(node, &local_rank_), "comm_rank");
  MPI_Comm_free(&node);
}

MpiCommunicator::~MpiCommunicator() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (comm_ != MPI_COMM_NULL && !finalized) MPI_Comm_free(&comm_);
}

void MpiCommunicator::wait(MPI_Request* request, const char* op, CollectiveTimeout timeout,
                           MPI_Status* status) {
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  // Spin briefly (steps arrive back to back under load), then back off so that an idle rank,
  // or several ranks oversubscribing a core, do not burn it.
  const auto max_sleep = std::chrono::microseconds(timeout < CollectiveTimeout::zero() ? 1000 : 200);
  auto sleep = std::chrono::microseconds(5);
  for (int polls = 0;; ++polls) {
    int done = 0;
    ARGENT_MPI_CHECK(MPI_Test(request, &done, status), op);
    if (done) return;
    if (timeout >= CollectiveTimeout::zero() && Clock::now() - start > timeout) {
      // The caller decides how to end the job (argent serve: answer clients, then exit); MPI
      // cannot cancel a pending collective, so this communicator is unusable from here on.
      ARGENT_LOG(kCritical, "MPI ", op, " did not finish within ", timeout.count(), " ms on rank ",
                 rank_, " of ", size_, ": a rank died or the ranks diverged");
      ARGENT_THROW(ErrorCode::kUnavailable, "MPI ", op, " did not finish within ",
                   timeout.count(), " ms on rank ", rank_, " of ", size_,
                   ": a rank died or the ranks diverged");
    }
    if (polls < 64) {
      std::this_thread::yield();
    } else {
      std::this_thread::sleep_for(sleep);
      sleep = std::min(sleep * 2, max_sleep);
    }
  }
}

void MpiCommunicator::broadcast(void* data, size_t bytes, int root, CollectiveTimeout timeout) {
  MPI_Request request;
  ARGENT_MPI_CHECK(
      MPI_Ibcast(data, byte_count(bytes, "broadcast"), MPI_BYTE, root, comm_, &request),
      "broadcast");
  wait(&request, "broadcast", timeout);
}

void MpiCommunicator::all_gather(const void* send, void* recv, size_t bytes) {
  byte_count(bytes * size_t(size_), "all_gather");
  MPI_Request request;
  ARGENT_MPI_CHECK(MPI_Iallgather(send, int(bytes), MPI_BYTE, recv, int(bytes), MPI_BYTE, comm_,
                                  &request),
                   "all_gather");
  wait(&request, "all_gather", timeout_);
}

void MpiCommunicator::all_gather_v(const void* send, void* recv,
                                   const std::vector<size_t>& counts) {
  ARGENT_CHECK(int(counts.size()) == size_, "all_gather_v: ", counts.size(), " counts for ",
               size_, " ranks");
  std::vector<int> recv_counts(counts.size()), displacements(counts.size());
  size_t total = 0;
  for (size_t r = 0; r < counts.size(); ++r) {
    recv_counts[r] = byte_count(counts[r], "all_gather_v");
    displacements[r] = byte_count(total, "all_gather_v");
    total += counts[r];
  }
  byte_count(total, "all_gather_v");
  MPI_Request request;
  ARGENT_MPI_CHECK(MPI_Iallgatherv(send, recv_counts[size_t(rank_)], MPI_BYTE, recv,
                                   recv_counts.data(), displacements.data(), MPI_BYTE, comm_,
                                   &request),
                   "all_gather_v");
  wait(&request, "all_gather_v", timeout_);
}

void MpiCommunicator::send(const void* data, size_t bytes, int peer) {
  MPI_Request request;
  ARGENT_MPI_CHECK(
      MPI_Isend(data, byte_count(bytes, "send"), MPI_BYTE, peer, 0, comm_, &request), "send");
  wait(&request, "send", timeout_);
}

void MpiCommunicator::recv(void* data, size_t bytes, int peer) {
  MPI_Request request;
  ARGENT_MPI_CHECK(
      MPI_Irecv(data, byte_count(bytes, "recv"), MPI_BYTE, peer, 0, comm_, &request), "recv");
  MPI_Status status;
  wait(&request, "recv", timeout_, &status);
  int received = 0;
  ARGENT_MPI_CHECK(MPI_Get_count(&status, MPI_BYTE, &received), "recv");
  ARGENT_CHECK_DATA(size_t(received) == bytes, "MPI recv from rank ", peer, ": got ", received,
                    " bytes, expected ", bytes);
}

void MpiCommunicator::barrier() {
  MPI_Request request;
  ARGENT_MPI_CHECK(MPI_Ibarrier(comm_, &request), "barrier");
  wait(&request, "barrier", timeout_);
}

}  // namespace argent
