// CUDA entry points of aiflow_comm._C: group quantize+pack and unpack+dequantize on a CUDA device.
// The specification is aiflow_comm/kernels/reference.py (bit for bit); the kernels and the notes on
// how they stay exact are in quant_cuda_kernels.cuh. This file checks the arguments, allocates the
// outputs, picks a kernel and a grid, and launches on the current stream.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <map>
#include <mutex>
#include <type_traits>
#include <utility>
#include <vector>

#if defined(__has_include)
#if __has_include("quant.h")
#include "quant.h"  // the declarations of quantize_cuda / dequantize_cuda (with WITH_CUDA)
#endif
#endif

#include "quant_cuda_kernels.cuh"

namespace {

// GroupLayout (aiflow_comm/kernels/layout.py) of R rows of D values. `group_size` here is
// min(group_size, D): a group size >= D gives one group of D values, the same layout.
struct Layout {
  int64_t rows = 0;
  int64_t row_len = 0;
  int64_t group_size = 1;
  int64_t num_groups = 0;
  int64_t group_bytes = 0;
  int64_t row_bytes = 0;
};

void check_scheme(const char* fn, int64_t bits, int64_t group_size) {
  TORCH_CHECK(bits == 2 || bits == 4 || bits == 8, fn, ": bits must be one of (2, 4, 8); got ", bits);
  TORCH_CHECK(group_size >= 1, fn, ": group_size must be >= 1; got ", group_size);
}

Layout make_layout(const char* fn, int64_t rows, int64_t row_len, int64_t bits, int64_t group_size) {
  TORCH_CHECK(row_len >= 0, fn, ": row_len must be >= 0; got ", row_len);
  TORCH_CHECK(row_len <= std::numeric_limits<int64_t>::max() / 16, fn, ": row length ", row_len,
              " is too large");
  Layout l;
  l.rows = rows;
  l.row_len = row_len;
  l.group_size = std::min<int64_t>(group_size, std::max<int64_t>(row_len, 1));
  l.num_groups = row_len / l.group_size + (row_len % l.group_size != 0 ? 1 : 0);
  l.group_bytes = (l.group_size * bits + 7) / 8;
  if (l.num_groups > 0) {
    const int64_t last = row_len - (l.num_groups - 1) * l.group_size;
    l.row_bytes = (l.num_groups - 1) * l.group_bytes + (last * bits + 7) / 8;
  }
  return l;
}

bool is_float_type(at::ScalarType t) {
  return t == at::kFloat || t == at::kHalf || t == at::kBFloat16;
}

// A strided (rows, cols) tensor whose last dimension has stride 1 (or at most one element).
void check_rows(const char* fn, const char* name, const at::Tensor& t) {
  TORCH_CHECK(t.layout() == at::kStrided, fn, ": ", name, " must be a strided (dense) tensor; got ",
              t.layout());
  TORCH_CHECK(t.dim() == 2, fn, ": ", name, " must be 2-D; got shape ", t.sizes());
  TORCH_CHECK(t.size(1) <= 1 || t.stride(1) == 1, fn, ": ", name,
              " must have a contiguous last dimension (stride 1); got strides ", t.strides());
  TORCH_CHECK(t.size(0) <= 1 || t.stride(0) >= 0, fn, ": ", name, " has a negative row stride");
}

int multiprocessor_count(int device) {
  int count = 0;
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, device));
  return std::max(count, 1);
}

// Resident blocks per multiprocessor of a kernel, cached per (kernel, device).
template <class Kernel>
int blocks_per_multiprocessor(Kernel kernel, int threads, int device) {
  static std::mutex mutex;
  static std::map<std::pair<const void*, int>, int> cache;
  const auto key = std::make_pair(reinterpret_cast<const void*>(kernel), device);
  {
    std::lock_guard<std::mutex> lock(mutex);
    const auto it = cache.find(key);
    if (it != cache.end()) return it->second;
  }
  int blocks = 0;
  C10_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, kernel, threads, 0));
  blocks = std::max(blocks, 1);
  std::lock_guard<std::mutex> lock(mutex);
  cache[key] = blocks;
  return blocks;
}

// Blocks for a grid-stride loop over `items` work items, `per_block` per block: no more than
// one full wave of resident blocks.
unsigned grid_size(int64_t items, int64_t per_block, int64_t resident_blocks) {
  const int64_t wanted = (items + per_block - 1) / per_block;
  return static_cast<unsigned>(std::max<int64_t>(1, std::min(wanted, resident_blocks)));
}

template <class Tag>
void launch_quantize(const qc::QuantParams& p, int bits, bool symmetric, bool stochastic, int device,
                     cudaStream_t stream) {
  const qc::QuantKernels kernels = qc::quant_kernels_for<Tag>(bits, symmetric, stochastic);
  const int64_t groups = p.rows * p.num_groups;
  const int64_t sms = multiprocessor_count(device);
  if (p.group_size <= qc::kRegisterGroupMax) {
    const int team = qc::quantize_team_size(p.group_size);
    const int64_t resident = sms * blocks_per_multiprocessor(kernels.team, qc::kTeamThreads, device);
    const unsigned blocks = grid_size(groups, qc::kTeamThreads / team, resident);
    kernels.team<<<blocks, qc::kTeamThreads, 0, stream>>>(p, team);
  } else {
    const int threads = qc::quantize_block_threads(p.group_size, Tag::kSize);
    const int64_t resident = sms * blocks_per_multiprocessor(kernels.block, threads, device);
    const unsigned blocks = grid_size(groups, 1, resident);
    kernels.block<<<blocks, threads, 0, stream>>>(p);
  }
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

template <class Tag>
void launch_dequantize(qc::DequantParams p, int bits, bool symmetric, int device, cudaStream_t stream) {
  const qc::DequantKernel kernel = qc::dequant_kernel_for<Tag>(bits, symmetric);
  const int team = qc::dequantize_team_size(p.group_size, Tag::kSize);
  p.team = team;
  p.segment = static_cast<int64_t>(team) * (16 / Tag::kSize) * qc::kDequantChunks;
  p.segments_per_group = (p.group_size + p.segment - 1) / p.segment;
  const int64_t items = p.rows * p.num_groups * p.segments_per_group;
  const int64_t resident =
      static_cast<int64_t>(multiprocessor_count(device)) * blocks_per_multiprocessor(kernel, qc::kTeamThreads, device);
  const unsigned blocks = grid_size(items, qc::kTeamThreads / team, resident);
  kernel<<<blocks, qc::kTeamThreads, 0, stream>>>(p);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

}  // namespace

std::vector<at::Tensor> quantize_cuda(const at::Tensor& input, int64_t bits, int64_t group_size,
                                      bool symmetric, int64_t seed) {
  constexpr const char* fn = "quantize_cuda";
  TORCH_CHECK(input.defined(), fn, ": x is an undefined tensor");
  TORCH_CHECK(input.is_cuda(), fn, ": x must be a CUDA tensor; got one on ", input.device());
  TORCH_CHECK(is_float_type(input.scalar_type()), fn,
              ": x must have dtype float32, float16 or bfloat16; got ", input.scalar_type());
  check_rows(fn, "x", input);
  const at::Tensor x = input.is_neg() ? input.resolve_neg() : input;  // a lazily negated view
  check_rows(fn, "x", x);
  check_scheme(fn, bits, group_size);
  const int64_t rows = x.size(0);
  const Layout l = make_layout(fn, rows, x.size(1), bits, group_size);

  const c10::cuda::CUDAGuard guard(x.device());
  const auto float_options = x.options().dtype(at::kFloat);
  at::Tensor codes = at::empty({rows, l.row_bytes}, x.options().dtype(at::kByte));
  at::Tensor scales = at::empty({rows, l.num_groups}, float_options);
  at::Tensor zero_points =
      symmetric ? at::empty({0}, float_options) : at::empty({rows, l.num_groups}, float_options);
  if (rows == 0 || l.row_len == 0) return {codes, scales, zero_points};

  qc::QuantParams p{};
  p.x = x.data_ptr();
  p.x_row_stride = rows > 1 ? x.stride(0) : 0;
  p.rows = rows;
  p.row_len = l.row_len;
  p.group_size = l.group_size;
  p.num_groups = l.num_groups;
  p.group_bytes = l.group_bytes;
  p.codes = codes.data_ptr<uint8_t>();
  p.codes_row_stride = codes.stride(0);
  p.scales = scales.data_ptr<float>();
  p.scales_row_stride = scales.stride(0);
  p.zero_points = symmetric ? nullptr : zero_points.data_ptr<float>();
  p.zero_points_row_stride = symmetric ? 0 : zero_points.stride(0);
  p.seed = static_cast<uint32_t>(static_cast<uint64_t>(seed) & 0xffffffffu);  // seed & MASK32
  const int64_t denominator = symmetric ? (int64_t{1} << (bits - 1)) - 1 : (int64_t{1} << bits) - 1;
  p.scale_div = static_cast<float>(denominator);

  const bool stochastic = seed >= 0;
  const int device = x.get_device();
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream(x.get_device()).stream();
  switch (x.scalar_type()) {
    case at::kFloat: launch_quantize<qc::TagF32>(p, static_cast<int>(bits), symmetric, stochastic, device, stream); break;
    case at::kHalf: launch_quantize<qc::TagF16>(p, static_cast<int>(bits), symmetric, stochastic, device, stream); break;
    default: launch_quantize<qc::TagBF16>(p, static_cast<int>(bits), symmetric, stochastic, device, stream); break;
  }
  return {codes, scales, zero_points};
}

at::Tensor dequantize_cuda(const at::Tensor& codes, const at::Tensor& scales_in,
                           const at::Tensor& zero_points_in, int64_t bits, int64_t group_size,
                           int64_t row_len, bool symmetric, at::ScalarType dtype) {
  constexpr const char* fn = "dequantize_cuda";
  TORCH_CHECK(codes.defined(), fn, ": codes is an undefined tensor");
  TORCH_CHECK(codes.is_cuda(), fn, ": codes must be a CUDA tensor; got one on ", codes.device());
  TORCH_CHECK(codes.scalar_type() == at::kByte, fn, ": codes must have dtype uint8; got ",
              codes.scalar_type());
  check_rows(fn, "codes", codes);
  check_scheme(fn, bits, group_size);
  TORCH_CHECK(is_float_type(dtype), fn, ": dtype must be float32, float16 or bfloat16; got ", dtype);
  const int64_t rows = codes.size(0);
  const Layout l = make_layout(fn, rows, row_len, bits, group_size);
  TORCH_CHECK(codes.size(1) == l.row_bytes, fn, ": codes must have shape (", rows, ", ", l.row_bytes,
              ") for row_len=", row_len, ", bits=", bits, ", group_size=", group_size, "; got ",
              codes.sizes());
  TORCH_CHECK(scales_in.defined(), fn, ": scales is an undefined tensor");
  const at::Tensor scales = scales_in.is_neg() ? scales_in.resolve_neg() : scales_in;
  TORCH_CHECK(scales.device() == codes.device(), fn, ": scales must be on ", codes.device(),
              " like codes; got ", scales.device());
  TORCH_CHECK(scales.scalar_type() == at::kFloat, fn, ": scales must have dtype float32; got ",
              scales.scalar_type());
  check_rows(fn, "scales", scales);
  TORCH_CHECK(scales.size(0) == rows && scales.size(1) == l.num_groups, fn,
              ": scales must have shape (", rows, ", ", l.num_groups, "); got ", scales.sizes());
  // Symmetric: zero_points is not read (the reference ignores it too).
  const at::Tensor zero_points =
      (!symmetric && zero_points_in.defined() && zero_points_in.is_neg()) ? zero_points_in.resolve_neg() : zero_points_in;
  if (!symmetric) {
    TORCH_CHECK(zero_points_in.defined(), fn, ": zero_points is an undefined tensor");
    TORCH_CHECK(zero_points.device() == codes.device(), fn, ": zero_points must be on ",
                codes.device(), " like codes; got ", zero_points.device());
    TORCH_CHECK(zero_points.scalar_type() == at::kFloat, fn,
                ": zero_points must have dtype float32; got ", zero_points.scalar_type());
    check_rows(fn, "zero_points", zero_points);
    TORCH_CHECK(zero_points.size(0) == rows && zero_points.size(1) == l.num_groups, fn,
                ": zero_points must have shape (", rows, ", ", l.num_groups, "); got ",
                zero_points.sizes());
  }

  const c10::cuda::CUDAGuard guard(codes.device());
  at::Tensor out = at::empty({rows, row_len}, codes.options().dtype(dtype));
  if (rows == 0 || row_len == 0) return out;

  qc::DequantParams p{};
  p.codes = codes.data_ptr<uint8_t>();
  p.codes_row_stride = rows > 1 ? codes.stride(0) : 0;
  p.scales = scales.data_ptr<float>();
  p.scales_row_stride = rows > 1 ? scales.stride(0) : 0;
  p.zero_points = symmetric ? nullptr : zero_points.data_ptr<float>();
  p.zero_points_row_stride = (symmetric || rows <= 1) ? 0 : zero_points.stride(0);
  p.out = out.data_ptr();
  p.out_row_stride = out.stride(0);
  p.rows = rows;
  p.row_len = l.row_len;
  p.group_size = l.group_size;
  p.num_groups = l.num_groups;
  p.group_bytes = l.group_bytes;

  const int device = codes.get_device();
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream(device).stream();
  switch (dtype) {
    case at::kFloat: launch_dequantize<qc::TagF32>(p, static_cast<int>(bits), symmetric, device, stream); break;
    case at::kHalf: launch_dequantize<qc::TagF16>(p, static_cast<int>(bits), symmetric, device, stream); break;
    default: launch_dequantize<qc::TagBF16>(p, static_cast<int>(bits), symmetric, device, stream); break;
  }
  return out;
}

// The definitions above must be the functions quant.h declares (a differing signature would make an
// overload here and an undefined symbol at import): taking their addresses is ambiguous otherwise.
static_assert(std::is_same<decltype(&quantize_cuda),
                           std::vector<at::Tensor> (*)(const at::Tensor&, int64_t, int64_t, bool, int64_t)>::value,
              "quantize_cuda: signature differs from the declaration");
static_assert(std::is_same<decltype(&dequantize_cuda),
                           at::Tensor (*)(const at::Tensor&, const at::Tensor&, const at::Tensor&, int64_t,
                                          int64_t, int64_t, bool, at::ScalarType)>::value,
              "dequantize_cuda: signature differs from the declaration");
