// CPU projection fused with group quantization: project_quantize (quantize(x @ W^T + b)) and
// dequantize_project (dequantize(codes) @ W^T + b), tile by tile so that the float projection
// (or the decoded tensor) never exists in memory as a whole. Row blocks are processed in turn:
// at::addmm (multi-threaded BLAS) writes a block's float32 tile into one reused buffer of about
// 1 MiB, which is still in cache when quantize_cpu_out (quant_cpu.cpp, the bit-exact group
// quantizer, parallel over groups) reads it. Measured on a 2-core AVX-512 CPU, this beat one
// task per thread with single-threaded tile matmuls (1.7x slower on 4096 x 4096 -> 512).
// Codes equal the reference's up to the summation order of the tile's matmul (see
// aiflow_comm/kernels/fused.py).
#include "quant.h"

#include <c10/core/GradMode.h>

#include <algorithm>

namespace {

constexpr int64_t kTileFloats = int64_t{1} << 18;  // 1 MiB of float32 per tile, about
constexpr int64_t kMinBlockRows = 64;                 // fewer rows make the matmul inefficient

// Rows per block: a tile of about kTileFloats values of `width` columns.
int64_t block_rows(int64_t rows, int64_t width) {
  const int64_t by_cache = std::max(kTileFloats / std::max<int64_t>(width, 1), kMinBlockRows);
  return std::max<int64_t>(1, std::min(by_cache, rows));
}

bool is_float_type(at::ScalarType t) {
  return t == at::kFloat || t == at::kHalf || t == at::kBFloat16;
}

// The float32 (out, in) weight and (out,) bias (undefined when absent), checked against `in`.
void check_projection(const char* op, const at::Tensor& weight,
                      const c10::optional<at::Tensor>& bias, int64_t in_features) {
  TORCH_CHECK(weight.device().is_cpu() && weight.dim() == 2 && is_float_type(weight.scalar_type()),
              op, ": weight must be a 2-D float32/float16/bfloat16 CPU tensor (out, in)");
  TORCH_CHECK(weight.size(1) == in_features, op, ": weight has ", weight.size(1),
              " input features; x has ", in_features);
  if (bias.has_value() && bias->defined()) {
    TORCH_CHECK(bias->device().is_cpu() && bias->dim() == 1 && bias->size(0) == weight.size(0) &&
                    is_float_type(bias->scalar_type()),
                op, ": bias must be a float CPU tensor of shape (", weight.size(0), ",)");
  }
}

// out_tile = in_tile @ weight_t (+ bias), float32.
void project_tile(const at::Tensor& in_tile, const at::Tensor& weight_t, const at::Tensor& bias,
                  at::Tensor& out_tile) {
  if (bias.defined()) {
    at::addmm_out(out_tile, bias, in_tile, weight_t);
  } else {
    at::mm_out(out_tile, in_tile, weight_t);
  }
}

}  // namespace

std::vector<at::Tensor> project_quantize_cpu(const at::Tensor& x, const at::Tensor& weight,
                                             const c10::optional<at::Tensor>& bias, int64_t bits,
                                             int64_t group_size, bool symmetric) {
  TORCH_CHECK(x.device().is_cpu() && x.dim() == 2 && is_float_type(x.scalar_type()),
              "project_quantize_cpu: x must be a 2-D float32/float16/bfloat16 CPU tensor");
  TORCH_CHECK(x.size(1) <= 1 || x.stride(1) == 1,
              "project_quantize_cpu: x's last stride must be 1");
  TORCH_CHECK(bits == 2 || bits == 4 || bits == 8, "bits must be 2, 4 or 8; got ", bits);
  TORCH_CHECK(group_size >= 1, "group_size must be >= 1; got ", group_size);
  check_projection("project_quantize_cpu", weight, bias, x.size(1));
  c10::AutoGradMode no_grad(false);
  const int64_t rows = x.size(0), width = weight.size(0);
  const at::Tensor weight_t = weight.to(at::kFloat).t();
  const at::Tensor b = bias.has_value() && bias->defined() ? bias->to(at::kFloat) : at::Tensor();
  const int64_t groups = width > 0 ? (width + group_size - 1) / group_size : 0;
  const int64_t group_bytes = (group_size * bits + 7) / 8;
  const int64_t last = width - (groups - 1) * group_size;
  const int64_t row_bytes = groups > 0 ? (groups - 1) * group_bytes + (last * bits + 7) / 8 : 0;
  const auto f32 = x.options().dtype(at::kFloat);
  at::Tensor codes = at::empty({rows, row_bytes}, x.options().dtype(at::kByte));
  at::Tensor scales = at::empty({rows, groups}, f32);
  at::Tensor zero_points = symmetric ? at::empty({0}, f32) : at::empty({rows, groups}, f32);
  if (rows == 0 || groups == 0) return {codes, scales, zero_points};
  const bool convert = x.scalar_type() != at::kFloat;
  const int64_t block = block_rows(rows, width);
  const int64_t blocks = (rows + block - 1) / block;
  at::Tensor tile = at::empty({block, width}, f32);
  at::Tensor staged = convert ? at::empty({block, x.size(1)}, f32) : at::Tensor();
  for (int64_t i = 0; i < blocks; ++i) {
    const int64_t start = i * block, n = std::min(block, rows - start);
    at::Tensor in_tile = x.narrow(0, start, n);
    if (convert) in_tile = staged.narrow(0, 0, n).copy_(in_tile);
    at::Tensor out_tile = tile.narrow(0, 0, n);
    project_tile(in_tile, weight_t, b, out_tile);
    at::Tensor c = codes.narrow(0, start, n), s = scales.narrow(0, start, n);
    at::Tensor z = symmetric ? zero_points : zero_points.narrow(0, start, n);
    quantize_cpu_out(out_tile, bits, group_size, symmetric, -1, c, s, z);
  }
  return {codes, scales, zero_points};
}

at::Tensor dequantize_project_cpu(const at::Tensor& codes, const at::Tensor& scales,
                                  const at::Tensor& zero_points, int64_t bits, int64_t group_size,
                                  int64_t row_len, bool symmetric, const at::Tensor& weight,
                                  const c10::optional<at::Tensor>& bias, at::ScalarType dtype) {
  TORCH_CHECK(codes.dim() == 2, "dequantize_project_cpu: codes must be 2-D; got ", codes.dim(),
              "-D");
  TORCH_CHECK(is_float_type(dtype), "dtype must be float32, float16 or bfloat16; got ", dtype);
  check_projection("dequantize_project_cpu", weight, bias, row_len);
  c10::AutoGradMode no_grad(false);
  const int64_t rows = codes.size(0), width = weight.size(0);
  const at::Tensor weight_t = weight.to(at::kFloat).t();
  const at::Tensor b = bias.has_value() && bias->defined() ? bias->to(at::kFloat) : at::Tensor();
  const auto f32 = codes.options().dtype(at::kFloat);
  at::Tensor out = at::empty({rows, width}, codes.options().dtype(dtype));
  if (rows == 0 || width == 0) return out;
  if (row_len == 0) return out.zero_().add_(b.defined() ? b : at::zeros({width}, f32));
  const bool convert = dtype != at::kFloat;
  const int64_t block = block_rows(rows, row_len);
  const int64_t blocks = (rows + block - 1) / block;
  at::Tensor decoded = at::empty({block, row_len}, f32);
  at::Tensor projected = convert ? at::empty({block, width}, f32) : at::Tensor();
  for (int64_t i = 0; i < blocks; ++i) {
    const int64_t start = i * block, n = std::min(block, rows - start);
    at::Tensor in_tile = decoded.narrow(0, 0, n);
    at::Tensor z = symmetric ? zero_points : zero_points.narrow(0, start, n);
    dequantize_cpu_out(codes.narrow(0, start, n), scales.narrow(0, start, n), z, bits,
                       group_size, row_len, symmetric, in_tile);
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
