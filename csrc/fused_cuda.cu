// CUDA projection fused with group quantization: project_quantize_cuda (quantize(x @ W^T + b)) and
// dequantize_project_cuda (dequantize(codes) @ W^T + b).
//
// project_quantize_cuda with at most kFusedMaxWidth (128) output features, unless x and W are a
// float16/bfloat16 pair (below), is one launch of the skinny kernel of fused_cuda_kernels.cuh: it
// multiplies in float32 on the CUDA cores (x converted as it is loaded; each output summed over k
// in order with FMAs, then + bias) and quantizes each block's rows from shared memory, so the
// float projection never reaches global memory.
//
// Other projections follow the strategy of fused_cpu.cpp on the GPU. Row blocks are processed in
// turn on the current stream: cuBLAS (at::addmm_out) writes a block's float32 projection into one
// reused tile of about 8 MiB, small enough to stay in L2, and the quantize team/block kernel of
// quant_cuda_kernels.cuh (the bit-exact group quantizer) reads it there and writes the block's
// codes, scales and zero points straight into the outputs. The converse decodes a block of codes
// into a float32 tile with the dequantize kernel, then multiplies it. The float projection (or the
// decoded tensor) exists one block at a time, never whole (unless it fits in one block).
//
// The cuBLAS matmul is float32 (x and W are converted to float32 first, as the spec does), so codes
// equal the reference's up to the matmul's summation order (see aiflow_comm/kernels/fused.py), as
// long as torch does not allow TF32 for float32 matmuls (torch.backends.cuda.matmul.allow_tf32,
// off by default; the skinny kernel never uses TF32). When x and W are both float16 or both
// bfloat16 (torch 2.8 and newer), the matmul runs on tensor cores with float32 output instead
// (aten::mm.dtype: cuBLAS with float32 accumulation): the product of two such values is exact in
// float32, so that is still the spec's float32 projection, only summed in another order, and x
// needs no float32 copy.
#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>

#include <torch/version.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "cuda_launch.cuh"
#include "fused_cuda_kernels.cuh"
#include "quant.h"

namespace {

constexpr int64_t kTileFloats = int64_t{1} << 21;  // 8 MiB of float32 per tile
constexpr int64_t kMinBlockRows = 256;             // fewer rows make cuBLAS inefficient

// Rows per block: a tile of about kTileFloats values of `width` columns.
int64_t block_rows(int64_t rows, int64_t width) {
  const int64_t by_cache = std::max(kTileFloats / std::max<int64_t>(width, 1), kMinBlockRows);
  return std::max<int64_t>(1, std::min(by_cache, rows));
}

// A defined tensor on `device`.
void check_device(const char* fn, const char* name, const at::Tensor& t, const at::Device& device) {
  TORCH_CHECK(t.defined(), fn, ": ", name, " is an undefined tensor");
  TORCH_CHECK(t.device() == device, fn, ": ", name, " must be on ", device, "; got ", t.device());
}

// A 2-D tensor of `dtype`, `rows` x `cols`, last stride 1: the kernels index it by row stride.
void check_rows(const char* fn, const char* name, const at::Tensor& t, at::ScalarType dtype,
                int64_t rows, int64_t cols) {
  TORCH_CHECK(t.layout() == at::kStrided, fn, ": ", name, " must be a strided (dense) tensor");
  TORCH_CHECK(t.scalar_type() == dtype, fn, ": ", name, " must have dtype ", dtype, "; got ",
              t.scalar_type());
  TORCH_CHECK(t.dim() == 2 && t.size(0) == rows && t.size(1) == cols, fn, ": ", name,
              " must have shape (", rows, ", ", cols, "); got ", t.sizes());
  TORCH_CHECK(cols <= 1 || t.stride(1) == 1, fn, ": ", name,
              " must have a contiguous last dimension (stride 1); got strides ", t.strides());
  TORCH_CHECK(rows <= 1 || t.stride(0) >= 0, fn, ": ", name, " has a negative row stride");
}

// weight: float (out, in_features) and bias: float (out,) or None, both on `device`.
void check_projection(const char* fn, const at::Tensor& weight, const c10::optional<at::Tensor>& bias,
                      int64_t in_features, const at::Device& device) {
  check_device(fn, "weight", weight, device);
  TORCH_CHECK(weight.dim() == 2 && qc::is_float_type(weight.scalar_type()), fn,
              ": weight must be a 2-D float32/float16/bfloat16 tensor (out, in); got ",
              weight.scalar_type(), " of shape ", weight.sizes());
  TORCH_CHECK(weight.size(1) == in_features, fn, ": weight has ", weight.size(1),
              " input features; the input has ", in_features);
  if (bias.has_value() && bias->defined()) {
    check_device(fn, "bias", *bias, device);
    TORCH_CHECK(bias->dim() == 1 && bias->size(0) == weight.size(0) && qc::is_float_type(bias->scalar_type()),
                fn, ": bias must be a float tensor of shape (", weight.size(0), ",); got ",
                bias->scalar_type(), " of shape ", bias->sizes());
  }
}

// aten::mm.dtype (float16/bfloat16 operands, float32 output) came with torch 2.8.
#ifndef TORCH_VERSION_MAJOR
#error "torch/version.h did not define TORCH_VERSION_MAJOR"
#endif
#define AIFLOW_HAS_MM_DTYPE (TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 8))

// Whether x and the weight are both float16 or both bfloat16, multiplied as they are.
bool half_precision_pair(const at::Tensor& x, const at::Tensor& weight) {
  const at::ScalarType t = x.scalar_type();
  return AIFLOW_HAS_MM_DTYPE && t == weight.scalar_type() &&
         (t == at::kHalf || t == at::kBFloat16);
}

// in_tile @ weight_t (+ bias) for float16/bfloat16 operands of one dtype, as a new float32 tensor.
at::Tensor project_half_tile(const at::Tensor& in_tile, const at::Tensor& weight_t,
                             const at::Tensor& bias) {
#if AIFLOW_HAS_MM_DTYPE
  at::Tensor out = at::mm(in_tile, weight_t, at::kFloat);
  return bias.defined() ? out.add_(bias) : out;
#else
  TORCH_CHECK(false, "project_half_tile needs torch 2.8 or newer (aten::mm.dtype)");
  return in_tile;
#endif
}

// out_tile = in_tile @ weight_t (+ bias), float32, on the current stream.
void project_tile(const at::Tensor& in_tile, const at::Tensor& weight_t, const at::Tensor& bias,
                  at::Tensor& out_tile) {
  if (bias.defined()) {
    at::addmm_out(out_tile, bias, in_tile, weight_t);
  } else {
    at::mm_out(out_tile, in_tile, weight_t);
  }
}

// quantize(x @ W^T + b) in one launch of the skinny kernel (fused_cuda_kernels.cuh), for at most
// kFusedMaxWidth output features, into the outputs that `q` describes. Warps take 4 rows each
// when the rows fill every multiprocessor at that rate, else 1 (more blocks for a few rows).
void project_quantize_fused(const at::Tensor& x_in, const at::Tensor& weight, const at::Tensor& bias,
                            qc::QuantParams q, int bits, bool symmetric, int device,
                            cudaStream_t stream) {
  const at::Tensor x = x_in.size(1) <= 1 || x_in.stride(1) == 1 ? x_in : x_in.contiguous();
  const at::Tensor w = weight.to(at::kFloat).contiguous();
  const at::Tensor b = bias.defined() ? bias.contiguous() : bias;
  qc::FusedParams f{};
  f.x = x.data_ptr();
  f.x_row_stride = x.size(0) > 1 ? x.stride(0) : 0;
  f.in_features = x.size(1);
  f.weight = w.data_ptr<float>();
  f.bias = b.defined() ? b.data_ptr<float>() : nullptr;
  f.q = q;
  f.team = qc::quantize_team_size(q.group_size);
  const int64_t many_rows = int64_t{qc::kFusedMaxRows} * qc::multiprocessor_count(device);
  const int tm = q.rows >= many_rows ? 4 : 1;
  qc::FusedKernel kernel;
  switch (x.scalar_type()) {
    case at::kFloat: kernel = qc::fused_kernel_for<qc::TagF32>(bits, symmetric, tm); break;
    case at::kHalf: kernel = qc::fused_kernel_for<qc::TagF16>(bits, symmetric, tm); break;
    default: kernel = qc::fused_kernel_for<qc::TagBF16>(bits, symmetric, tm); break;
  }
  const int64_t resident = qc::resident_blocks(kernel, qc::kFusedThreads, device);
  kernel<<<qc::grid_size(q.rows, qc::kFusedWarps * tm, resident), qc::kFusedThreads, 0, stream>>>(f);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

}  // namespace

std::vector<at::Tensor> project_quantize_cuda(const at::Tensor& x, const at::Tensor& weight,
                                              const c10::optional<at::Tensor>& bias, int64_t bits,
                                              int64_t group_size, bool symmetric) {
  constexpr const char* fn = "project_quantize_cuda";
  TORCH_CHECK(x.defined() && x.is_cuda(), fn, ": x must be a CUDA tensor");
  TORCH_CHECK(x.layout() == at::kStrided && x.dim() == 2 && qc::is_float_type(x.scalar_type()), fn,
              ": x must be a 2-D float32/float16/bfloat16 tensor (rows, in); got ", x.scalar_type(),
              " of shape ", x.sizes());
  qc::check_scheme(fn, bits, group_size);
  check_projection(fn, weight, bias, x.size(1), x.device());
  const c10::cuda::CUDAGuard guard(x.device());
  c10::AutoGradMode no_grad(false);
  // Inside an autocast region, cuBLAS would multiply float32 operands in float16: the
  // specification's projection is float32 (a float16/bfloat16 pair runs as mm.dtype, below).
  const c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset);
  const int64_t rows = x.size(0), width = weight.size(0);
  const qc::RowLayout l = qc::row_layout(width, bits, group_size);
  const auto f32 = x.options().dtype(at::kFloat);
  at::Tensor codes = at::empty({rows, l.row_bytes}, x.options().dtype(at::kByte));
  at::Tensor scales = at::empty({rows, l.num_groups}, f32);
  at::Tensor zero_points = symmetric ? at::empty({0}, f32) : at::empty({rows, l.num_groups}, f32);
  if (rows == 0 || l.num_groups == 0) return {codes, scales, zero_points};

  const at::Tensor b = bias.has_value() && bias->defined() ? bias->to(at::kFloat) : at::Tensor();
  qc::QuantParams p{};
  qc::set_layout(p, l);
  p.codes_row_stride = l.row_bytes;
  p.scales_row_stride = l.num_groups;
  p.zero_points_row_stride = symmetric ? 0 : l.num_groups;
  p.scale_div = static_cast<float>(symmetric ? (int64_t{1} << (bits - 1)) - 1 : (int64_t{1} << bits) - 1);
  const int device = x.get_device();
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream(device).stream();
  const bool half_pair = half_precision_pair(x, weight);
  if (width <= qc::kFusedMaxWidth && !half_pair) {
    p.rows = rows;
    p.codes = codes.data_ptr<uint8_t>();
    p.scales = scales.data_ptr<float>();
    p.zero_points = symmetric ? nullptr : zero_points.data_ptr<float>();
    project_quantize_fused(x, weight, b, p, static_cast<int>(bits), symmetric, device, stream);
    return {codes, scales, zero_points};
  }

  const at::Tensor weight_t = (half_pair ? weight : weight.to(at::kFloat)).t();
  const bool convert = !half_pair && x.scalar_type() != at::kFloat;
  const int64_t block = block_rows(rows, width);
  at::Tensor tile = half_pair ? at::Tensor() : at::empty({block, width}, f32);
  at::Tensor staged = convert ? at::empty({block, x.size(1)}, f32) : at::Tensor();

  for (int64_t start = 0; start < rows; start += block) {
    const int64_t n = std::min(block, rows - start);
    at::Tensor in_tile = x.narrow(0, start, n);
    if (convert) in_tile = staged.narrow(0, 0, n).copy_(in_tile);
    at::Tensor out_tile;
    if (half_pair) {
      out_tile = project_half_tile(in_tile, weight_t, b);
    } else {
      out_tile = tile.narrow(0, 0, n);
      project_tile(in_tile, weight_t, b, out_tile);
    }
    p.x = out_tile.data_ptr<float>();
    p.x_row_stride = n > 1 ? width : 0;
    p.rows = n;
    p.codes = codes.data_ptr<uint8_t>() + start * l.row_bytes;
    p.scales = scales.data_ptr<float>() + start * l.num_groups;
    p.zero_points = symmetric ? nullptr : zero_points.data_ptr<float>() + start * l.num_groups;
    qc::launch_quantize<qc::TagF32>(p, static_cast<int>(bits), symmetric, /*stochastic=*/false, device, stream);
  }
  return {codes, scales, zero_points};
}

at::Tensor dequantize_project_cuda(const at::Tensor& codes, const at::Tensor& scales_in,
                                   const at::Tensor& zero_points_in, int64_t bits, int64_t group_size,
                                   int64_t row_len, bool symmetric, const at::Tensor& weight,
                                   const c10::optional<at::Tensor>& bias, at::ScalarType dtype) {
  constexpr const char* fn = "dequantize_project_cuda";
  TORCH_CHECK(codes.defined() && codes.is_cuda(), fn, ": codes must be a CUDA tensor");
  TORCH_CHECK(codes.dim() == 2, fn, ": codes must be 2-D; got shape ", codes.sizes());
  qc::check_scheme(fn, bits, group_size);
  TORCH_CHECK(row_len >= 0, fn, ": row_len must be >= 0; got ", row_len);
  TORCH_CHECK(qc::is_float_type(dtype), fn, ": dtype must be float32, float16 or bfloat16; got ", dtype);
  const int64_t rows = codes.size(0);
  const qc::RowLayout l = qc::row_layout(row_len, bits, group_size);
  check_rows(fn, "codes", codes, at::kByte, rows, l.row_bytes);
  check_device(fn, "scales", scales_in, codes.device());
  const at::Tensor scales = scales_in.resolve_neg();  // the kernel reads memory: no lazy negation
  check_rows(fn, "scales", scales, at::kFloat, rows, l.num_groups);
  at::Tensor zero_points;  // symmetric: not read
  if (!symmetric) {
    check_device(fn, "zero_points", zero_points_in, codes.device());
    zero_points = zero_points_in.resolve_neg();
    check_rows(fn, "zero_points", zero_points, at::kFloat, rows, l.num_groups);
  }
  check_projection(fn, weight, bias, row_len, codes.device());
  const c10::cuda::CUDAGuard guard(codes.device());
  c10::AutoGradMode no_grad(false);
  // Inside an autocast region, cuBLAS would multiply float32 operands in float16: the
  // specification's projection is float32 (a float16/bfloat16 pair runs as mm.dtype, below).
  const c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset);
  const int64_t width = weight.size(0);
  at::Tensor out = at::empty({rows, width}, codes.options().dtype(dtype));
  if (rows == 0 || width == 0) return out;
  const at::Tensor b = bias.has_value() && bias->defined() ? bias->to(at::kFloat) : at::Tensor();
  if (row_len == 0) return b.defined() ? out.copy_(b.expand({rows, width})) : out.zero_();

  const at::Tensor weight_t = weight.to(at::kFloat).t();
  const auto f32 = codes.options().dtype(at::kFloat);
  const bool convert = dtype != at::kFloat;
  // The decoded tile is scratch; a float32 output is written in place, other dtypes go through a
  // float32 tile of `width` columns.
  const int64_t block = block_rows(rows, convert ? std::max(row_len, width) : row_len);
  at::Tensor decoded = at::empty({block, row_len}, f32);
  at::Tensor projected = convert ? at::empty({block, width}, f32) : at::Tensor();

  qc::DequantParams p{};
  p.out = decoded.data_ptr<float>();
  p.out_row_stride = row_len;
  qc::set_layout(p, l);
  const int device = codes.get_device();
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream(device).stream();
  for (int64_t start = 0; start < rows; start += block) {
    const int64_t n = std::min(block, rows - start);
    p.rows = n;
    p.codes = codes.data_ptr<uint8_t>() + start * codes.stride(0);
    p.codes_row_stride = n > 1 ? codes.stride(0) : 0;
    p.scales = scales.data_ptr<float>() + start * scales.stride(0);
    p.scales_row_stride = n > 1 ? scales.stride(0) : 0;
    p.zero_points = symmetric ? nullptr : zero_points.data_ptr<float>() + start * zero_points.stride(0);
    p.zero_points_row_stride = (symmetric || n <= 1) ? 0 : zero_points.stride(0);
    qc::launch_dequantize<qc::TagF32>(p, static_cast<int>(bits), symmetric, device, stream);
    const at::Tensor in_tile = decoded.narrow(0, 0, n);
    at::Tensor out_tile = out.narrow(0, start, n);
    if (convert) {
      at::Tensor f = projected.narrow(0, 0, n);
      project_tile(in_tile, weight_t, b, f);
      out_tile.copy_(f);
    } else {
      project_tile(in_tile, weight_t, b, out_tile);
    }
  }
  return out;
}

// The definitions above must be the functions quant.h declares (a differing signature would make an
// overload here and an undefined symbol at import): taking their addresses is ambiguous otherwise.
static_assert(std::is_same<decltype(&project_quantize_cuda),
                           std::vector<at::Tensor> (*)(const at::Tensor&, const at::Tensor&,
                                                       const c10::optional<at::Tensor>&, int64_t,
                                                       int64_t, bool)>::value,
              "project_quantize_cuda: signature differs from the declaration");
static_assert(std::is_same<decltype(&dequantize_project_cuda),
                           at::Tensor (*)(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                          int64_t, int64_t, int64_t, bool, const at::Tensor&,
                                          const c10::optional<at::Tensor>&, at::ScalarType)>::value,
              "dequantize_project_cuda: signature differs from the declaration");
