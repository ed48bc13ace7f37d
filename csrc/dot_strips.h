// The skinny projection kernel's dot-product form (fused_cpu.cpp): out = x @ weight^T (+ bias)
// reading a float32 weight (out, in) with contiguous rows as it lies, where the outer-product
// form needs it packed into an (in, out) panel first (10-16 us a call at 96 x 768, paid by every
// thread): the faster form for a few rows. Strips of 8 rows of x (in L1) meet pairs of weight
// rows streamed from L2: 16 accumulators of 16 lanes, lane l summing the products at
// k = l mod 16 in order, 10 loads to 16 FMAs (the outer-product form's 11 loads to 24 FMAs make
// it 20-40% faster per row once packed). A strip's 16 sums are reduced in registers together,
// each in reduce16's order as every other output is, in whichever strip its row falls: no
// thread count or row offset changes a value. AVX-512F only (the includer's AIFLOW_AVX512).
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <type_traits>

namespace dot_strips {

constexpr int64_t kLanes = 16;
constexpr int kRows = 8;     // a strip's rows of x
constexpr int kColumns = 2;  // a strip's rows of the weight (output features)

// The sum of v's 16 lanes in the order of reduce_all's tree: halves, quarters, then pairs.
inline float reduce16(__m512 v) {
  const __m256 high = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1));
  const __m256 h = _mm256_add_ps(_mm512_castps512_ps256(v), high);
  const __m128 q = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
  const __m128 p = _mm_add_ps(q, _mm_movehl_ps(q, q));  // lanes 0 + 2, 1 + 3
  return _mm_cvtss_f32(_mm_add_ss(p, _mm_movehdup_ps(p)));
}

// s[p] = the sum of a[4 (p % 4) + p / 4]'s lanes for p < 16, each in reduce16's order: lanes
// i and i + 8, then i and i + 4, i and i + 2, i and i + 1.
inline __m512 reduce_all(const __m512 a[16]) {
  __m512 b[8], c[4], d[2];
  for (int i = 0; i < 8; ++i) {  // 128-bit lanes: a[2i] halves summed, then a[2i + 1]'s
    b[i] = _mm512_add_ps(_mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0x44),
                         _mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0xEE));
  }
  for (int i = 0; i < 4; ++i) {  // 128-bit lane m: a[4i + m]'s quarters summed
    c[i] = _mm512_add_ps(_mm512_shuffle_f32x4(b[2 * i], b[2 * i + 1], 0x88),
                         _mm512_shuffle_f32x4(b[2 * i], b[2 * i + 1], 0xDD));
  }
  for (int i = 0; i < 2; ++i) {  // lane m: (c[2i]: 0 + 2, c[2i + 1]: 0 + 2, ...: 1 + 3)
    d[i] = _mm512_add_ps(_mm512_unpacklo_ps(c[2 * i], c[2 * i + 1]),
                         _mm512_unpackhi_ps(c[2 * i], c[2 * i + 1]));
  }
  return _mm512_add_ps(_mm512_shuffle_ps(d[0], d[1], 0x44), _mm512_shuffle_ps(d[0], d[1], 0xEE));
}

// acc[r * C + c] += x[r, k0 .. k0 + 16) * w[c, k0 .. k0 + 16), lanes past `lanes` read as zero.
template <int R, int C, bool Full>
inline void accumulate(const float* x, int64_t x_stride, const float* w, int64_t w_stride,
                       int64_t k0, __mmask16 lanes, __m512 acc[R * C]) {
  __m512 wv[C];
#pragma GCC unroll 2
  for (int c = 0; c < C; ++c) {
    wv[c] = Full ? _mm512_loadu_ps(w + c * w_stride + k0)
                 : _mm512_maskz_loadu_ps(lanes, w + c * w_stride + k0);
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    const __m512 xv = Full ? _mm512_loadu_ps(x + r * x_stride + k0)
                           : _mm512_maskz_loadu_ps(lanes, x + r * x_stride + k0);
#pragma GCC unroll 2
    for (int c = 0; c < C; ++c) acc[r * C + c] = _mm512_fmadd_ps(xv, wv[c], acc[r * C + c]);
  }
}

// out[r, c] = sum_k x[r, k] w[c, k] (+ bias[c]) for R rows and C weight rows.
template <int R, int C>
inline void strip(const float* x, int64_t x_stride, int64_t in, const float* w, int64_t w_stride,
                  const float* bias, float* out, int64_t out_stride) {
  __m512 acc[R * C];
#pragma GCC unroll 16
  for (int i = 0; i < R * C; ++i) acc[i] = _mm512_setzero_ps();
  int64_t k0 = 0;
  for (; k0 + kLanes <= in; k0 += kLanes) {
    accumulate<R, C, true>(x, x_stride, w, w_stride, k0, 0, acc);
  }
  if (k0 < in) {
    const auto lanes = static_cast<__mmask16>((1u << (in - k0)) - 1u);
    accumulate<R, C, false>(x, x_stride, w, w_stride, k0, lanes, acc);
  }
  alignas(64) float sums[R * C];
  constexpr int kTree = R * C / 16 * 16;
  for (int g = 0; g < kTree; g += 16) {
    alignas(64) float reduced[16];
    _mm512_store_ps(reduced, reduce_all(acc + g));
    for (int i = 0; i < 16; ++i) sums[g + i] = reduced[4 * (i % 4) + i / 4];
  }
  for (int i = kTree; i < R * C; ++i) sums[i] = reduce16(acc[i]);
  for (int r = 0; r < R; ++r) {
    for (int c = 0; c < C; ++c) {
      out[r * out_stride + c] = bias ? sums[r * C + c] + bias[c] : sums[r * C + c];
    }
  }
}

// Rows [0, n) of `out` (row stride out_stride): columns [0, width) for strips of C weight rows.
template <int R>
inline void strip_row(const float* x, int64_t x_stride, int64_t in, const float* w,
                      int64_t w_stride, int64_t width, const float* bias, float* out,
                      int64_t out_stride) {
  int64_t c = 0;
  for (; c + kColumns <= width; c += kColumns) {
    strip<R, kColumns>(x, x_stride, in, w + c * w_stride, w_stride, bias ? bias + c : nullptr,
                       out + c, out_stride);
  }
  if (c < width) {
    strip<R, 1>(x, x_stride, in, w + c * w_stride, w_stride, bias ? bias + c : nullptr, out + c,
                out_stride);
  }
}

// out[0:n, 0:width) = x[0:n] @ w^T (+ bias): x's rows x_stride floats apart, w's w_stride, out's
// out_stride; strips of kRows rows, then 4, 2 and 1 as the remainder's bits say.
inline void project(const float* x, int64_t x_stride, int64_t n, int64_t in, const float* w,
                    int64_t w_stride, int64_t width, const float* bias, float* out,
                    int64_t out_stride) {
  int64_t r = 0;
  for (; r + kRows <= n; r += kRows) {
    strip_row<kRows>(x + r * x_stride, x_stride, in, w, w_stride, width, bias,
                     out + r * out_stride, out_stride);
  }
  const int64_t tail = n - r;
  auto run = [&](auto rows_c) {
    constexpr int T = decltype(rows_c)::value;
    strip_row<T>(x + r * x_stride, x_stride, in, w, w_stride, width, bias, out + r * out_stride,
                 out_stride);
    r += T;
  };
  if (tail & 4) run(std::integral_constant<int, 4>{});
  if (tail & 2) run(std::integral_constant<int, 2>{});
  if (tail & 1) run(std::integral_constant<int, 1>{});
}

}  // namespace dot_strips
