// Group quantization kernels: the C++ (CPU) and CUDA entry points of aiflow_comm._C.
// The specification is aiflow_comm/kernels/reference.py: every kernel matches it bit for bit.
#pragma once

#include <ATen/ATen.h>

#include <vector>

// x: (R, D) float32/float16/bfloat16, last stride 1. seed < 0: round to nearest.
// Returns {codes uint8 (R, row_bytes), scales float32 (R, groups), zero_points (R, groups) or (0,)}.
std::vector<at::Tensor> quantize_cpu(const at::Tensor& x, int64_t bits, int64_t group_size,
                                     bool symmetric, int64_t seed);
at::Tensor dequantize_cpu(const at::Tensor& codes, const at::Tensor& scales,
                          const at::Tensor& zero_points, int64_t bits, int64_t group_size,
                          int64_t row_len, bool symmetric, at::ScalarType dtype);
// The same kernels writing into caller-owned buffers (a streaming loop reuses them).
void quantize_cpu_out(const at::Tensor& x, int64_t bits, int64_t group_size, bool symmetric,
                      int64_t seed, at::Tensor& codes, at::Tensor& scales, at::Tensor& zero_points);
void dequantize_cpu_out(const at::Tensor& codes, const at::Tensor& scales,
                        const at::Tensor& zero_points, int64_t bits, int64_t group_size,
                        int64_t row_len, bool symmetric, at::Tensor& out);
// Serial round-to-nearest quantize_cpu of float32 rows in raw buffers, for a caller that
// parallelizes itself (fused_cpu.cpp quantizes each block of rows it projects): row r is
// x[r * row_stride, r * row_stride + row_len); codes (rows, row_bytes), scales and zero_points
// (rows, groups; unused when symmetric) are contiguous, laid out as quantize_cpu's. Same code,
// same codes as quantize_cpu.
void quantize_rows_f32(const float* x, int64_t rows, int64_t row_stride, int64_t row_len,
                       int64_t bits, int64_t group_size, bool symmetric, uint8_t* codes,
                       float* scales, float* zero_points);
// Raises unless codes (R, row_bytes) uint8, scales (R, groups) float32 and, asymmetric,
// zero_points like scales are contiguous CPU tensors of the layout of (R, row_len), bits and
// group_size: what dequantize_cpu checks.
void check_dequantize_args(const at::Tensor& codes, const at::Tensor& scales,
                           const at::Tensor& zero_points, int64_t bits, int64_t group_size,
                           int64_t row_len, bool symmetric);
// Serial dequantize_cpu of rows into a float32 buffer, for a caller that parallelizes itself
// (fused_cpu.cpp decodes each block of rows it multiplies): row r's codes, scales and zero points
// (unused when symmetric) lie at r times their row strides, its values at out + r * out_row_stride.
// The same values as dequantize_cpu's.
void dequantize_rows_f32(const uint8_t* codes, int64_t codes_row_stride, const float* scales,
                         int64_t scales_row_stride, const float* zero_points,
                         int64_t zero_points_row_stride, int64_t rows, int64_t row_len,
                         int64_t bits, int64_t group_size, bool symmetric, float* out,
                         int64_t out_row_stride);
// Whether every value of a float32 CPU tensor is finite: one pass, where torch.isfinite(t).all()
// takes three ops and two temporaries (~17 us on the few hundred scales of a small tensor).
bool all_finite_cpu(const at::Tensor& values);
// Asks for transparent huge pages for a freshly allocated tensor of 16 MiB or more, before its
// first write (page faults dominate that write otherwise). Advisory.
void advise_huge_pages(const at::Tensor& fresh);
// Projection fused with quantization (fused_cpu.cpp): quantize(x @ weight^T + bias) and
// dequantize(codes) @ weight^T + bias, float32 accumulation, without the whole float intermediate.
// x: (R, in) float, last stride 1; weight: (out, in) float; bias: (out,) float or None.
std::vector<at::Tensor> project_quantize_cpu(const at::Tensor& x, const at::Tensor& weight,
                                             const c10::optional<at::Tensor>& bias, int64_t bits,
                                             int64_t group_size, bool symmetric);
at::Tensor dequantize_project_cpu(const at::Tensor& codes, const at::Tensor& scales,
                                  const at::Tensor& zero_points, int64_t bits, int64_t group_size,
                                  int64_t row_len, bool symmetric, const at::Tensor& weight,
                                  const c10::optional<at::Tensor>& bias, at::ScalarType dtype);

// Counter-based standard normal noise (gaussian_cpu.cpp): fills float32 `out` for `seed`.
void counter_normal_cpu(at::Tensor& out, int64_t seed);

#ifdef WITH_CUDA
std::vector<at::Tensor> quantize_cuda(const at::Tensor& x, int64_t bits, int64_t group_size,
                                      bool symmetric, int64_t seed);
at::Tensor dequantize_cuda(const at::Tensor& codes, const at::Tensor& scales,
                           const at::Tensor& zero_points, int64_t bits, int64_t group_size,
                           int64_t row_len, bool symmetric, at::ScalarType dtype);
// The fused ops on a CUDA device (fused_cuda.cu): the arguments of the CPU ones, CUDA tensors.
std::vector<at::Tensor> project_quantize_cuda(const at::Tensor& x, const at::Tensor& weight,
                                              const c10::optional<at::Tensor>& bias, int64_t bits,
                                              int64_t group_size, bool symmetric);
at::Tensor dequantize_project_cuda(const at::Tensor& codes, const at::Tensor& scales,
                                   const at::Tensor& zero_points, int64_t bits, int64_t group_size,
                                   int64_t row_len, bool symmetric, const at::Tensor& weight,
                                   const c10::optional<at::Tensor>& bias, at::ScalarType dtype);
#endif
