// A projection weight packed once for MKL's packed GEMM (cblas_sgemm_pack, cblas_sgemm_compute)
// and multiplied block of rows by block of rows. at::addmm packs the weight again on every call:
// blocks of rows through addmm cost 1.05-1.10x one matmul (4096 x 4096 -> 512 in 512-row blocks),
// the packed weight's blocks 0.93-0.95x (MKL's packed compute beats its own plain sgemm here).
//
// MKL is reached through weak references that resolve where the torch in use links MKL and
// exports its symbols (the x86-64 Linux wheels do); elsewhere available() is false and callers
// keep at::addmm.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>

class PackedWeight {
 public:
  // Whether MKL's packed GEMM is present, and every size is positive and fits int32 (MKL's
  // LP64 integers).
  static bool available(int64_t rows, int64_t in_features, int64_t out_features,
                        int64_t x_row_stride);

  // Whether the constructor reads `weight` as it is: float32 with rows or columns contiguous
  // (weight or weight.T contiguous, or a slice of either); else pass weight.contiguous().
  static bool packs_in_place(const at::Tensor& weight);

  // weight: float32 (out, in), packs_in_place. Packs weight^T as GEMM's B matrix for products
  // with blocks of `block_rows` rows (MKL lays the pack out for that many; fewer also work).
  PackedWeight(const at::Tensor& weight, int64_t block_rows);

  // out[0:rows, 0:out) = x[0:rows] @ weight^T + beta * out, float32; rows of x lie x_row_stride
  // floats apart, rows of out out_row_stride apart.
  void multiply(const float* x, int64_t x_row_stride, int64_t rows, float beta, float* out,
                int64_t out_row_stride) const;

 private:
  at::Tensor buffer_;
  int64_t in_features_, out_features_;
};
