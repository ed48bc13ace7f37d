// CUDA entry points of aiflow_comm._C: group quantize+pack and unpack+dequantize on a CUDA device.
// The specification is aiflow_comm/kernels/reference.py (bit for bit); the kernels and the notes on
// how they stay exact are in quant_cuda_kernels.cuh. This file checks the arguments, allocates the
// outputs and launches on the current stream (the kernel and grid choices are in cuda_launch.cuh).
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <limits>
#include <type_traits>
#include <vector>

#if defined(__has_include)
#if __has_include("quant.h")
#include "quant.h"  // the declarations of quantize_cuda / dequantize_cuda (with WITH_CUDA)
#endif
#endif

#include "cuda_launch.cuh"

namespace {

// The layout of rows of `row_len` values (see qc::row_layout), once row_len is checked.
qc::RowLayout make_layout(const char* fn, int64_t row_len, int64_t bits, int64_t group_size) {
  TORCH_CHECK(row_len >= 0, fn, ": row_len must be >= 0; got ", row_len);
  TORCH_CHECK(row_len <= std::numeric_limits<int64_t>::max() / 16, fn, ": row length ", row_len,
              " is too large");
  return qc::row_layout(row_len, bits, group_size);
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

}  // namespace

std::vector<at::Tensor> quantize_cuda(const at::Tensor& input, int64_t bits, int64_t group_size,
                                      bool symmetric, int64_t seed) {
  constexpr const char* fn = "quantize_cuda";
  TORCH_CHECK(input.defined(), fn, ": x is an undefined tensor");
  TORCH_CHECK(input.is_cuda(), fn, ": x must be a CUDA tensor; got one on ", input.device());
  TORCH_CHECK(qc::is_float_type(input.scalar_type()), fn,
              ": x must have dtype float32, float16 or bfloat16; got ", input.scalar_type());
  check_rows(fn, "x", input);
  const at::Tensor x = input.is_neg() ? input.resolve_neg() : input;  // a lazily negated view
  check_rows(fn, "x", x);
  qc::check_scheme(fn, bits, group_size);
  const int64_t rows = x.size(0), row_len = x.size(1);
  const qc::RowLayout l = make_layout(fn, row_len, bits, group_size);

  const c10::cuda::CUDAGuard guard(x.device());
  const auto float_options = x.options().dtype(at::kFloat);
  at::Tensor codes = at::empty({rows, l.row_bytes}, x.options().dtype(at::kByte));
  at::Tensor scales = at::empty({rows, l.num_groups}, float_options);
  at::Tensor zero_points =
      symmetric ? at::empty({0}, float_options) : at::empty({rows, l.num_groups}, float_options);
  if (rows == 0 || row_len == 0) return {codes, scales, zero_points};

  qc::QuantParams p{};
  p.x = x.data_ptr();
  p.x_row_stride = rows > 1 ? x.stride(0) : 0;
  p.rows = rows;
  qc::set_layout(p, l);
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
    case at::kFloat: qc::launch_quantize<qc::TagF32>(p, static_cast<int>(bits), symmetric, stochastic, device, stream); break;
    case at::kHalf: qc::launch_quantize<qc::TagF16>(p, static_cast<int>(bits), symmetric, stochastic, device, stream); break;
    default: qc::launch_quantize<qc::TagBF16>(p, static_cast<int>(bits), symmetric, stochastic, device, stream); break;
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
  qc::check_scheme(fn, bits, group_size);
  TORCH_CHECK(qc::is_float_type(dtype), fn, ": dtype must be float32, float16 or bfloat16; got ", dtype);
  const int64_t rows = codes.size(0);
  const qc::RowLayout l = make_layout(fn, row_len, bits, group_size);
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
  qc::set_layout(p, l);

  const int device = codes.get_device();
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream(device).stream();
  switch (dtype) {
    case at::kFloat: qc::launch_dequantize<qc::TagF32>(p, static_cast<int>(bits), symmetric, device, stream); break;
    case at::kHalf: qc::launch_dequantize<qc::TagF16>(p, static_cast<int>(bits), symmetric, device, stream); break;
    default: qc::launch_dequantize<qc::TagBF16>(p, static_cast<int>(bits), symmetric, device, stream); break;
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
