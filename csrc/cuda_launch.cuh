// Host side shared by the CUDA entry points (quant_cuda.cu, fused_cuda.cu): the argument checks
// both make, the occupancy of a kernel, and the launches of the quantize and dequantize kernels of
// quant_cuda_kernels.cuh on a grid of at most one full wave, on a given stream.
#pragma once

#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <mutex>
#include <utility>

#include "quant_cuda_kernels.cuh"

namespace qc {

inline bool is_float_type(at::ScalarType t) {
  return t == at::kFloat || t == at::kHalf || t == at::kBFloat16;
}

inline void check_scheme(const char* fn, int64_t bits, int64_t group_size) {
  TORCH_CHECK(bits == 2 || bits == 4 || bits == 8, fn, ": bits must be one of (2, 4, 8); got ", bits);
  TORCH_CHECK(group_size >= 1, fn, ": group_size must be >= 1; got ", group_size);
}

inline int multiprocessor_count(int device) {
  int count = 0;
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, device));
  return std::max(count, 1);
}

// Resident blocks of a kernel on the whole device (one full wave), cached per (kernel, device).
template <class Kernel>
int64_t resident_blocks(Kernel kernel, int threads, int device) {
  static std::mutex mutex;
  static std::map<std::pair<const void*, int>, int64_t> cache;
  const auto key = std::make_pair(reinterpret_cast<const void*>(kernel), device);
  {
    std::lock_guard<std::mutex> lock(mutex);
    const auto it = cache.find(key);
    if (it != cache.end()) return it->second;
  }
  int per_multiprocessor = 0;
  C10_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_multiprocessor, kernel, threads, 0));
  const int64_t blocks = static_cast<int64_t>(std::max(per_multiprocessor, 1)) * multiprocessor_count(device);
  std::lock_guard<std::mutex> lock(mutex);
  cache[key] = blocks;
  return blocks;
}

// Quantizes the (rows, row_len) input of `p`, of element type Tag: the team kernel for groups of
// at most kRegisterGroupMax values, else the one-block-per-group kernel.
template <class Tag>
void launch_quantize(const QuantParams& p, int bits, bool symmetric, bool stochastic, int device,
                     cudaStream_t stream) {
  const QuantKernels kernels = quant_kernels_for<Tag>(bits, symmetric, stochastic);
  const int64_t groups = p.rows * p.num_groups;
  if (p.group_size <= kRegisterGroupMax) {
    const int team = quantize_team_size(p.group_size);
    const int64_t resident = resident_blocks(kernels.team, kTeamThreads, device);
    kernels.team<<<grid_size(groups, kTeamThreads / team, resident), kTeamThreads, 0, stream>>>(p, team);
  } else {
    const int threads = quantize_block_threads(p.group_size, Tag::kSize);
    const int64_t resident = resident_blocks(kernels.block, threads, device);
    kernels.block<<<grid_size(groups, 1, resident), threads, 0, stream>>>(p);
  }
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

// Decodes the codes of `p` into its output, of element type Tag (p's work split is set here).
template <class Tag>
void launch_dequantize(DequantParams p, int bits, bool symmetric, int device, cudaStream_t stream) {
  const DequantKernel kernel = dequant_kernel_for<Tag>(bits, symmetric);
  const int64_t items = plan_dequantize(p, Tag::kSize);
  const int64_t resident = resident_blocks(kernel, kTeamThreads, device);
  kernel<<<grid_size(items, kTeamThreads / p.team, resident), kTeamThreads, 0, stream>>>(p);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

}  // namespace qc
