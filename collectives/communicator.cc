#include "collectives/communicator.h"

#include "common/error.h"

namespace argent {
namespace {

void check_tensor(const Communicator& comm, const at::Tensor& t, const char* op) {
  ARGENT_CHECK(t.is_contiguous(), op, ": tensor must be contiguous");
  const bool on_cuda = t.is_cuda();
  ARGENT_CHECK(on_cuda == (comm.memory() == MemoryKind::kCuda), op, ": a ",
               on_cuda ? "CUDA" : "host", " tensor passed to the ", comm.backend(),
               " communicator, which works on ",
               comm.memory() == MemoryKind::kCuda ? "CUDA" : "host", " memory");
}

}  // namespace

at::Device communicator_device(const Communicator& comm) {
  if (comm.memory() == MemoryKind::kHost) return at::Device(at::kCPU);
  return at::Device(at::kCUDA, at::DeviceIndex(-1));
}

void broadcast_tensor(Communicator& comm, at::Tensor& tensor, int root) {
  check_tensor(comm, tensor, "broadcast");
  comm.broadcast(tensor.data_ptr(), size_t(tensor.nbytes()), root);
}

at::Tensor all_gather_tensor(Communicator& comm, const at::Tensor& tensor) {
  check_tensor(comm, tensor, "all_gather");
  std::vector<int64_t> shape{comm.size()};
  for (int64_t s : tensor.sizes()) shape.push_back(s);
  at::Tensor out = at::empty(shape, tensor.options());
  comm.all_gather(tensor.data_ptr(), out.data_ptr(), size_t(tensor.nbytes()));
  return out;
}

at::Tensor all_gather_rows(Communicator& comm, const at::Tensor& tensor,
                           std::vector<int64_t>* rows_per_rank) {
  check_tensor(comm, tensor, "all_gather_rows");
  ARGENT_CHECK(tensor.dim() >= 1, "all_gather_rows: tensor needs at least one dimension");
  // Exchange the row counts first (on the communicator's memory), then the rows.
  at::Tensor rows = at::full({1}, tensor.size(0), tensor.options().dtype(at::kLong));
  const at::Tensor all_rows = all_gather_tensor(comm, rows).cpu();
  int64_t row_bytes = int64_t(tensor.element_size());
  for (int64_t d = 1; d < tensor.dim(); ++d) row_bytes *= tensor.size(d);
  std::vector<size_t> counts(size_t(comm.size()));
  std::vector<int64_t> shape(tensor.sizes().begin(), tensor.sizes().end());
  shape[0] = 0;
  for (int r = 0; r < comm.size(); ++r) {
    const int64_t n = all_rows.data_ptr<int64_t>()[r];
    counts[size_t(r)] = size_t(n * row_bytes);
    shape[0] += n;
    if (rows_per_rank) rows_per_rank->push_back(n);
  }
  at::Tensor out = at::empty(shape, tensor.options());
  comm.all_gather_v(tensor.data_ptr(), out.data_ptr(), counts);
  return out;
}

}  // namespace argent
