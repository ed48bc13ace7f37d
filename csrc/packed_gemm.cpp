// See packed_gemm.h.
#include "packed_gemm.h"

#include <limits>

// MKL's CBLAS declarations (mkl_cblas.h, LP64: MKL_INT is int; its enums are passed as int).
// Weak: null where no loaded library defines them.
#if defined(__GNUC__) && defined(__linux__)
#define AIFLOW_WEAK __attribute__((weak))
extern "C" {
AIFLOW_WEAK size_t cblas_sgemm_pack_get_size(int identifier, int m, int n, int k);
AIFLOW_WEAK void cblas_sgemm_pack(int layout, int identifier, int trans, int m, int n, int k,
                                  float alpha, const float* src, int ld, float* dest);
AIFLOW_WEAK void cblas_sgemm_compute(int layout, int transa, int transb, int m, int n, int k,
                                     const float* a, int lda, const float* b, int ldb, float beta,
                                     float* c, int ldc);
}
#define AIFLOW_HAS_MKL_DECLARATIONS 1
#endif

namespace {
constexpr int kRowMajor = 101, kNoTrans = 111, kTrans = 112, kPacked = 151, kBMatrix = 162;

bool fits_int(int64_t value) { return value >= 1 && value <= std::numeric_limits<int>::max(); }
}  // namespace

bool PackedWeight::available(int64_t rows, int64_t in_features, int64_t out_features,
                             int64_t x_row_stride) {
#ifdef AIFLOW_HAS_MKL_DECLARATIONS
  return cblas_sgemm_pack_get_size != nullptr && cblas_sgemm_pack != nullptr &&
         cblas_sgemm_compute != nullptr && fits_int(rows) && fits_int(in_features) &&
         fits_int(out_features) && fits_int(x_row_stride);
#else
  return false;
#endif
}

bool PackedWeight::packs_in_place(const at::Tensor& weight) {
  if (weight.scalar_type() != at::kFloat || weight.dim() != 2) return false;
  const int64_t out = weight.size(0), in = weight.size(1);
  return (weight.stride(1) == 1 && weight.stride(0) >= in && fits_int(weight.stride(0))) ||
         (weight.stride(0) == 1 && weight.stride(1) >= out && fits_int(weight.stride(1)));
}

PackedWeight::PackedWeight(const at::Tensor& weight, int64_t block_rows)
    : in_features_(weight.size(1)), out_features_(weight.size(0)) {
#ifdef AIFLOW_HAS_MKL_DECLARATIONS
  TORCH_CHECK(packs_in_place(weight),
              "PackedWeight: the weight must be float32 with contiguous rows or columns");
  const int m = static_cast<int>(block_rows), n = static_cast<int>(out_features_);
  const int k = static_cast<int>(in_features_);
  // B = weight^T (k x n): the transpose of a row-major (n, k) weight, or a column-major weight's
  // memory as it is, a row-major (k, n) matrix; either way of leading dimension `ld`.
  const bool rows_contiguous = weight.stride(1) == 1 && weight.stride(0) >= k;
  const int ld = static_cast<int>(rows_contiguous ? weight.stride(0) : weight.stride(1));
  const size_t bytes = cblas_sgemm_pack_get_size(kBMatrix, m, n, k);
  buffer_ = at::empty({static_cast<int64_t>((bytes + sizeof(float) - 1) / sizeof(float))},
                      weight.options());
  cblas_sgemm_pack(kRowMajor, kBMatrix, rows_contiguous ? kTrans : kNoTrans, m, n, k, 1.0f,
                   weight.data_ptr<float>(), ld, buffer_.data_ptr<float>());
#else
  TORCH_CHECK(false, "PackedWeight: MKL's packed GEMM is not available in this build");
#endif
}

void PackedWeight::multiply(const float* x, int64_t x_row_stride, int64_t rows, float beta,
                            float* out, int64_t out_row_stride) const {
#ifdef AIFLOW_HAS_MKL_DECLARATIONS
  const int n = static_cast<int>(out_features_), k = static_cast<int>(in_features_);
  cblas_sgemm_compute(kRowMajor, kNoTrans, kPacked, static_cast<int>(rows), n, k, x,
                      static_cast<int>(x_row_stride), buffer_.data_ptr<float>(), n, beta, out,
                      static_cast<int>(out_row_stride));
#endif
}
