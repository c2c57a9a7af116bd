// GpuIndexTables: the per-index tables the CUDA search derives once from a shard's tensors.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "common/cuda_check.h"
#include "kernels/cuda/device_array.h"
#include "kernels/cuda/gpu_search.h"
#include "kernels/layout.h"

namespace argent {
namespace {

__global__ void block_inv_max_scale_kernel(const float* scales, int64_t n_blocks, float* out) {
  const int64_t b = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (b >= n_blocks) return;
  float m = 0.f;
  for (int r = 0; r < kBlockRows; ++r) m = fmaxf(m, scales[b * kBlockRows + r]);
  out[b] = m > 0.f ? 1.f / m : INFINITY;  // a block of zero scales scores 0 for every query
}

// One CTA per block (grid-stride): the block's 16 * d_pad bytes into shared memory, then back
// row by row, each thread 16 bytes of one row (4 of its words, each from its group's 64 bytes).
constexpr int kRowsThreads = kRowsLayoutDim;  // 16 rows x 8 pieces of 16 bytes
__global__ void __launch_bounds__(kRowsThreads)
    blocked_to_rows_kernel(int8_t* codes, int64_t first_block, int64_t n_blocks) {
  constexpr int kBytes = kBlockRows * kRowsLayoutDim;
  __shared__ uint4 block_words[kBytes / 16];
  const uint32_t* words = reinterpret_cast<const uint32_t*>(block_words);
  for (int64_t b = blockIdx.x; b < n_blocks; b += gridDim.x) {
    uint4* base = reinterpret_cast<uint4*>(codes + (first_block + b) * kBytes);
    block_words[threadIdx.x] = base[threadIdx.x];
    __syncthreads();
    // Thread: row r, words 4j .. 4j + 3 of it; word w of row r sits at group w, slot r.
    const int r = threadIdx.x / 8, j = threadIdx.x % 8;
    uint4 out;
    out.x = words[(4 * j + 0) * kBlockRows + r];
    out.y = words[(4 * j + 1) * kBlockRows + r];
    out.z = words[(4 * j + 2) * kBlockRows + r];
    out.w = words[(4 * j + 3) * kBlockRows + r];
    __syncthreads();  // every thread has read the block before any writes over it
    base[r * (kRowsLayoutDim / 16) + j] = out;
  }
}

}  // namespace

void blocked_codes_to_rows(int8_t* codes, int64_t first_block, int64_t n_blocks, int d_pad,
                           cudaStream_t stream) {
  ARGENT_CHECK(d_pad == kRowsLayoutDim, "row-major codes need d_pad ", kRowsLayoutDim, ", not ",
               d_pad);
  if (n_blocks <= 0) return;
  const int64_t ctas = std::min<int64_t>(n_blocks, int64_t(1) << 16);
  blocked_to_rows_kernel<<<unsigned(ctas), kRowsThreads, 0, stream>>>(codes, first_block,
                                                                      n_blocks);
  ARGENT_CUDA_CHECK_LAUNCH("blocked_to_rows_kernel");
}

struct GpuIndexTables::Buffers {
  DeviceArray inv_max_scale, chunk_list, chunk_first_block, chunk_blocks, list_first_chunk;
};

GpuIndexTables::GpuIndexTables(const ScanIndexView& scan, const int64_t* host_list_offsets,
                               const int64_t* host_list_sizes, const int8_t* centroid_codes,
                               const float* centroid_scales, cudaStream_t stream,
                               bool rows_layout)
    : buffers_(std::make_unique<Buffers>()) {
  ARGENT_CHECK(!rows_layout || scan.d_pad == kRowsLayoutDim,
               "GPU index: row-major codes need d_pad ", kRowsLayoutDim, ", not ", scan.d_pad);
  ARGENT_CHECK(scan.n_rows % kBlockRows == 0, "GPU index: rows ", scan.n_rows,
               " not a multiple of ", kBlockRows);
  ARGENT_CHECK(scan.n_rows < (int64_t(1) << 31), "GPU index: ", scan.n_rows,
               " rows exceed the 2^31 rows a shard may hold");
  const int64_t n_blocks = scan.n_rows / kBlockRows;
  std::vector<int32_t> list, first, blocks, list_first;
  int64_t max_rows = 0;
  for (int64_t l = 0; l < scan.n_lists; ++l) {
    list_first.push_back(int32_t(list.size()));
    ARGENT_CHECK(host_list_offsets[l] % kBlockRows == 0, "GPU index: list ", l, " offset ",
                 host_list_offsets[l], " not a multiple of ", kBlockRows);
    max_rows = std::max(max_rows, host_list_sizes[l]);
    const int64_t b0 = host_list_offsets[l] / kBlockRows;
    const int64_t nb = (host_list_sizes[l] + kBlockRows - 1) / kBlockRows;
    for (int64_t b = 0; b < nb; b += kChunkBlocks) {
      list.push_back(int32_t(l));
      first.push_back(int32_t(b0 + b));
      blocks.push_back(int32_t(std::min<int64_t>(kChunkBlocks, nb - b)));
    }
  }
  const size_t n_chunks = list.size();
  list_first.push_back(int32_t(n_chunks));
  auto upload = [&](DeviceArray& dst, const std::vector<int32_t>& src) {
    int32_t* p = dst.reserve_as<int32_t>(std::max<size_t>(1, src.size()));
    ARGENT_CUDA_CHECK(cudaMemcpyAsync(p, src.data(), src.size() * sizeof(int32_t),
                                      cudaMemcpyHostToDevice, stream));
    return p;
  };
  view_.scan = scan;
  view_.chunk_list = upload(buffers_->chunk_list, list);
  view_.chunk_first_block = upload(buffers_->chunk_first_block, first);
  view_.chunk_blocks = upload(buffers_->chunk_blocks, blocks);
  view_.list_first_chunk = upload(buffers_->list_first_chunk, list_first);
  view_.n_chunks = int64_t(n_chunks);
  view_.max_list_rows = max_rows;
  view_.centroid_codes = centroid_codes;
  view_.centroid_scales = centroid_scales;
  view_.rows_layout = rows_layout;
  float* inv = buffers_->inv_max_scale.reserve_as<float>(std::max<int64_t>(1, n_blocks));
  if (n_blocks > 0) {
    block_inv_max_scale_kernel<<<unsigned((n_blocks + 255) / 256), 256, 0, stream>>>(
        scan.scales, n_blocks, inv);
    ARGENT_CUDA_CHECK_LAUNCH("block_inv_max_scale_kernel");
  }
  view_.block_inv_max_scale = inv;
  // The host vectors die here: finish the copies first.
  ARGENT_CUDA_CHECK(cudaStreamSynchronize(stream));
}

GpuIndexTables::~GpuIndexTables() = default;

size_t GpuIndexTables::device_bytes() const {
  return buffers_->inv_max_scale.bytes() + buffers_->chunk_list.bytes() +
         buffers_->chunk_first_block.bytes() + buffers_->chunk_blocks.bytes() +
         buffers_->list_first_chunk.bytes();
}

}  // namespace argent
