// CUDA kernels for group quantization: the device side of quant_cuda.cu.
//
// This header holds no torch include (only CUDA headers, <stdint.h> and <string.h>), so it compiles
// on its own. The arithmetic reproduces aiflow_comm/kernels/reference.py (the spec) bit for bit, in
// float32, with IEEE-rounded intrinsics (__fdiv_rn, __fmul_rn, __fadd_rn, __fsub_rn, __fmaf_rn) so
// that nvcc can neither contract nor approximate anything. Never build this with --use_fast_math
// or -ftz=true: subnormals must not be flushed.
//
// The spec, per group of n values x (a row's last group may be shorter than group_size):
//   symmetric : scale = amax / qmax,   amax = max|x|            (NaN propagates)
//               q = clamp(round(x / d), -qmax, qmax), stored code q + 2**(bits-1)
//   asymmetric: scale = (mx - mn) / levels, mx = max x, mn = min x (NaN propagates)
//               q = clamp(round((x - mn) / d), 0, levels), stored code q, zero_point = mn
// with d = scale > 0 ? scale : 1, round = half to even (stochastic: floor(v + u), u from the
// counter hash of (seed, r * D + d)), NaN before the clamp -> q = 0, and every / a true float32
// division (IEEE, correctly rounded).
// The stored scale is scale + sum(x * 0): NaN for a group holding a NaN or an Inf.
//
// How the kernels compute exactly the same numbers, faster:
// * max/min: fmaxf/fminf plus bad = sum(x * 0) (one FFMA per value, NaN iff a NaN or an Inf is
//   present). fmaxf/fminf agree with torch's NaN-propagating amax/amin whenever no NaN is present;
//   when a warp holds a group with a NaN or an Inf (rare), the warp redoes its reductions with the
//   exact NaN-propagating rule (a warp-uniform branch, so the shuffles stay converged).
// * x / d: when the group is finite and 2**-40 <= d <= 2**40, with y = RN(1/d) per group,
//   q = RN(x*y) followed by two Markstein corrections (r = fma(-q, d, x), q = fma(r, y, q)), which
//   yields RN(x / d) exactly for |x / d| >= 2**-40 (the residual is exact: no underflow in that
//   range; checked against IEEE division on the host for 6e10 pairs, every mantissa of x in many
//   binades, 1500 divisors d); smaller quotients still round to a value below 1/2 in magnitude, hence to the same
//   code; stochastic rounding, where the sign of a tiny quotient matters, divides exactly below
//   that bound. Other groups use __fdiv_rn for every value.
// * round half to even of t in [-255, 255]: the float add t + 1.5 * 2**23 rounds to an integer in
//   round-to-nearest-even, and the low bits of its bit pattern are round(t) modulo 2**bits (the
//   symmetric offset 2**(bits-1), even, is added to the constant). Clamping before rounding equals
//   rounding before clamping (monotone, integer bounds).
//
// Layout (aiflow_comm/kernels/layout.py): every group starts on a byte boundary and takes
// ceil(n * bits / 8) bytes, the first value in the least significant bits, unused bits zero.
//
// Work split. Quantize, group_size <= 512: a "team" of TEAM lanes (a power of two <= 32, inside one
// warp) owns one group; each lane holds up to 16 values as chunks of VPT = 16 / sizeof(T) values
// (one 16-byte load when aligned), and loads the next group's chunks before it works on the
// current ones; chunk c of team lane l holds group positions
// [(c*TEAM + l)*VPT, +VPT), so that a team's loads are contiguous. Max/min go through xor-shuffles
// inside the team; each lane then quantizes and packs its chunks (VPT * bits is a multiple of 8, so
// a chunk starts on a byte) and writes each with one aligned store when it can. Quantize,
// group_size > 512: one block per group, two passes over global memory. Dequantize: a team owns a
// segment of up to TEAM*VPT*4 values of one group. Loops are grid-stride loops with int64 indices;
// in the quantize team kernel the loop bound is warp-uniform (idle teams take part in the shuffles
// with no data).
//
// Host emulation: compiled by a plain C++ compiler with QC_HOST_EMULATION defined, the same kernel
// bodies run on the host, the emulator providing the qc_emu_* functions (thread ids, shuffles,
// votes, barriers); build it with -ffp-contract=off so that host arithmetic is IEEE-rounded too.
// `EMULATE=1 bash tests/cuda_compile_check.sh` builds such an emulator and compares the kernels'
// results with the reference.
#pragma once

#include <stdint.h>
#include <string.h>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "stochastic_noise.h"

#if defined(__CUDACC__)
#define QC_DEV __device__ __forceinline__
#define QC_KERNEL __global__
#define QC_LAUNCH_BOUNDS(n) __launch_bounds__(n)
#define QC_SHARED __shared__
#define QC_UNROLL _Pragma("unroll")
#elif defined(QC_HOST_EMULATION)
#include <cmath>
#define QC_DEV inline
#define QC_KERNEL
#define QC_LAUNCH_BOUNDS(n)
#define QC_SHARED static
#define QC_UNROLL
// Provided by the emulator.
int qc_emu_thread_idx();
int qc_emu_block_idx();
int qc_emu_block_dim();
int qc_emu_grid_dim();
float qc_emu_shfl_xor(float value, int lane_mask);
bool qc_emu_warp_any(bool predicate);
void qc_emu_syncthreads();
#else
#error "quant_cuda_kernels.cuh needs nvcc (or QC_HOST_EMULATION for the host emulator)"
#endif

namespace qc {

// ---------------------------------------------------------------------------------------------
// Parameters (plain structs passed by value to the kernels).
// ---------------------------------------------------------------------------------------------

struct QuantParams {
  const void* x;                // element (0, 0) of the (rows, row_len) input
  int64_t x_row_stride;         // in elements, anything >= 0
  int64_t rows;                 // R >= 1
  int64_t row_len;              // D >= 1
  int64_t group_size;           // min(group_size, D) >= 1: the same layout as group_size
  int64_t num_groups;           // ceil(D / group_size)
  int64_t group_bytes;          // ceil(group_size * bits / 8)
  uint8_t* codes;               // (R, row_bytes)
  int64_t codes_row_stride;     // in bytes
  float* scales;                // (R, num_groups)
  int64_t scales_row_stride;    // in floats
  float* zero_points;           // (R, num_groups); unused when symmetric
  int64_t zero_points_row_stride;
  uint32_t seed;                // low 32 bits of the seed (stochastic rounding only)
  float scale_div;              // (float)denominator: qmax (symmetric) or levels (asymmetric)
};

struct DequantParams {
  const uint8_t* codes;         // (R, row_bytes)
  int64_t codes_row_stride;     // in bytes
  const float* scales;          // (R, num_groups)
  int64_t scales_row_stride;
  const float* zero_points;     // (R, num_groups); unused when symmetric
  int64_t zero_points_row_stride;
  void* out;                    // (R, row_len) of the output dtype
  int64_t out_row_stride;       // in elements
  int64_t rows;                 // R >= 1
  int64_t row_len;              // D >= 1
  int64_t group_size;           // min(group_size, D) >= 1
  int64_t num_groups;
  int64_t group_bytes;
  int64_t segment;              // values per work item: team * VPT * kDequantChunks
  int64_t segments_per_group;   // ceil(group_size / segment)
  int team;                     // lanes per work item: 1, 2, 4, 8, 16 or 32
};

// Element types, by tag. Storage is handled as raw bits: no __half / __nv_bfloat16 operators,
// which torch's flags (-D__CUDA_NO_HALF_CONVERSIONS__ and friends) switch off.
struct TagF32 { static constexpr int kSize = 4; };
struct TagF16 { static constexpr int kSize = 2; };
struct TagBF16 { static constexpr int kSize = 2; };

// A quantization scheme, fixed at compile time.
template <int BITS, bool SYM, bool STOCH>
struct Mode {
  static constexpr int kBits = BITS;
  static constexpr bool kSym = SYM;
  static constexpr bool kStoch = STOCH;
  static constexpr uint32_t kMask = (1u << BITS) - 1u;
  static constexpr int kOffset = SYM ? (1 << (BITS - 1)) : 0;  // stored code = q + kOffset
  static constexpr int kLow = SYM ? -((1 << (BITS - 1)) - 1) : 0;
  static constexpr int kHigh = SYM ? (1 << (BITS - 1)) - 1 : (1 << BITS) - 1;
};

constexpr int kWarp = 32;
constexpr int kTeamThreads = 256;     // block size of the team kernels
constexpr int kBlockThreadsMax = 512; // largest block of the one-block-per-group kernel
constexpr int kValuesPerLane = 16;    // quantize team kernel: values a lane holds (x2: prefetch)
constexpr int64_t kRegisterGroupMax = kWarp * kValuesPerLane;  // larger groups: block kernel
constexpr int kDequantChunks = 4;     // dequantize: chunks of VPT values per lane and item

// ---------------------------------------------------------------------------------------------
// Bits, conversions and IEEE-rounded arithmetic.
// ---------------------------------------------------------------------------------------------

QC_DEV float u32_as_f32(uint32_t u) {
#if defined(__CUDACC__)
  return __uint_as_float(u);
#else
  float f;
  memcpy(&f, &u, 4);
  return f;
#endif
}

QC_DEV uint32_t f32_as_u32(float f) {
#if defined(__CUDACC__)
  return __float_as_uint(f);
#else
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
#endif
}

QC_DEV bool is_nan(float f) { return (f32_as_u32(f) & 0x7fffffffu) > 0x7f800000u; }
QC_DEV float f_abs(float a) { return u32_as_f32(f32_as_u32(a) & 0x7fffffffu); }

QC_DEV float f_add(float a, float b) {
#if defined(__CUDACC__)
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}
QC_DEV float f_sub(float a, float b) {
#if defined(__CUDACC__)
  return __fsub_rn(a, b);
#else
  return a - b;
#endif
}
QC_DEV float f_mul(float a, float b) {
#if defined(__CUDACC__)
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}
QC_DEV float f_div(float a, float b) {
#if defined(__CUDACC__)
  return __fdiv_rn(a, b);
#else
  return a / b;
#endif
}
QC_DEV float f_fma(float a, float b, float c) {
#if defined(__CUDACC__)
  return __fmaf_rn(a, b, c);
#else
  return std::fma(a, b, c);
#endif
}
QC_DEV float f_rcp(float a) {
#if defined(__CUDACC__)
  return __frcp_rn(a);
#else
  return 1.0f / a;
#endif
}
// fmaxf/fminf: a NaN operand is ignored (the callers deal with NaN separately).
QC_DEV float f_max(float a, float b) {
#if defined(__CUDACC__)
  return fmaxf(a, b);
#else
  return std::fmax(a, b);
#endif
}
QC_DEV float f_min(float a, float b) {
#if defined(__CUDACC__)
  return fminf(a, b);
#else
  return std::fmin(a, b);
#endif
}
// floor of t, |t| <= 255 (no NaN), as an int.
QC_DEV int f_floor_int(float t) {
#if defined(__CUDACC__)
  return __float2int_rd(t);
#else
  return static_cast<int>(std::floor(t));
#endif
}

// torch's NaN-propagating max/min (amax/amin on CUDA): (isnan(a) || a > b) ? a : b.
QC_DEV float max_nan(float a, float b) { return (is_nan(a) || a > b) ? a : b; }
QC_DEV float min_nan(float a, float b) { return (is_nan(a) || a < b) ? a : b; }

// float16 / bfloat16 bits <-> float, as c10::Half / c10::BFloat16 convert on the device.
QC_DEV float f16_bits_to_f32(uint32_t h) {
  return __half2float(__ushort_as_half(static_cast<unsigned short>(h)));
}
QC_DEV float bf16_bits_to_f32(uint32_t h) { return u32_as_f32(h << 16); }  // = __bfloat162float
QC_DEV uint32_t f32_to_f16_bits(float f) { return __half_as_ushort(__float2half_rn(f)); }
QC_DEV uint32_t f32_to_bf16_bits(float f) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  return __bfloat16_as_ushort(__float2bfloat16(f));  // c10::BFloat16(float) on sm_80+
#else
  // c10::detail::round_to_nearest_even: c10::BFloat16(float) elsewhere.
  const uint32_t u = f32_as_u32(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7FC0u;
  return (u + ((u >> 16) & 1u) + 0x7FFFu) >> 16;
#endif
}

// ---------------------------------------------------------------------------------------------
// Thread ids, shuffles, votes, barriers.
// ---------------------------------------------------------------------------------------------

QC_DEV int thread_idx() {
#if defined(__CUDACC__)
  return static_cast<int>(threadIdx.x);
#else
  return qc_emu_thread_idx();
#endif
}
QC_DEV int block_idx() {
#if defined(__CUDACC__)
  return static_cast<int>(blockIdx.x);
#else
  return qc_emu_block_idx();
#endif
}
QC_DEV int block_dim() {
#if defined(__CUDACC__)
  return static_cast<int>(blockDim.x);
#else
  return qc_emu_block_dim();
#endif
}
QC_DEV int grid_dim() {
#if defined(__CUDACC__)
  return static_cast<int>(gridDim.x);
#else
  return qc_emu_grid_dim();
#endif
}
// Every lane of the warp must call these two.
QC_DEV float shfl_xor(float v, int lane_mask) {
#if defined(__CUDACC__)
  return __shfl_xor_sync(0xffffffffu, v, lane_mask);
#else
  return qc_emu_shfl_xor(v, lane_mask);
#endif
}
QC_DEV bool warp_any(bool predicate) {
#if defined(__CUDACC__)
  return __any_sync(0xffffffffu, predicate) != 0;
#else
  return qc_emu_warp_any(predicate);
#endif
}
QC_DEV void sync_block() {
#if defined(__CUDACC__)
  __syncthreads();
#else
  qc_emu_syncthreads();
#endif
}

// q = a / b, r = a % b for 0 <= a, 1 <= b (a 32-bit division when both fit).
QC_DEV void divmod(int64_t a, int64_t b, int64_t& q, int64_t& r) {
  if (((static_cast<uint64_t>(a) | static_cast<uint64_t>(b)) >> 32) == 0) {
    q = static_cast<int64_t>(static_cast<uint32_t>(a) / static_cast<uint32_t>(b));
  } else {
    q = a / b;
  }
  r = a - q * b;
}

QC_DEV bool aligned(const void* p, int bytes) {
  return (reinterpret_cast<uintptr_t>(p) & static_cast<uintptr_t>(bytes - 1)) == 0;
}

// ---------------------------------------------------------------------------------------------
// Loads and stores.
// ---------------------------------------------------------------------------------------------

// 16 bytes at a 16-byte-aligned address.
QC_DEV void load16(const void* p, uint32_t w[4]) {
#if defined(__CUDACC__)
  const uint4 v = __ldg(reinterpret_cast<const uint4*>(p));
  w[0] = v.x;
  w[1] = v.y;
  w[2] = v.z;
  w[3] = v.w;
#else
  memcpy(w, p, 16);
#endif
}

QC_DEV void store16(void* p, const uint32_t w[4]) {
#if defined(__CUDACC__)
  *reinterpret_cast<uint4*>(p) = make_uint4(w[0], w[1], w[2], w[3]);
#else
  memcpy(p, w, 16);
#endif
}

template <class Tag> QC_DEV float bits_to_f32(uint32_t bits);
template <> QC_DEV float bits_to_f32<TagF32>(uint32_t bits) { return u32_as_f32(bits); }
template <> QC_DEV float bits_to_f32<TagF16>(uint32_t bits) { return f16_bits_to_f32(bits); }
template <> QC_DEV float bits_to_f32<TagBF16>(uint32_t bits) { return bf16_bits_to_f32(bits); }

// Element i of the array at p, as float32 (exact).
template <class Tag> QC_DEV float load_one(const char* p, int64_t i) {
  if (Tag::kSize == 4) return bits_to_f32<Tag>(reinterpret_cast<const uint32_t*>(p)[i]);
  return bits_to_f32<Tag>(reinterpret_cast<const uint16_t*>(p)[i]);
}

// The 16 / kSize elements held in four little-endian words, as float32.
template <class Tag> QC_DEV void words_to_f32(const uint32_t w[4], float* out) {
  if (Tag::kSize == 4) {
    QC_UNROLL
    for (int i = 0; i < 4; ++i) out[i] = bits_to_f32<Tag>(w[i]);
  } else {
    QC_UNROLL
    for (int i = 0; i < 4; ++i) {
      out[2 * i] = bits_to_f32<Tag>(w[i] & 0xffffu);
      out[2 * i + 1] = bits_to_f32<Tag>(w[i] >> 16);
    }
  }
}

// The same chunk as raw element bits: four little-endian words (16 bytes), positions >= n holding
// the chunk's first element. Kept in registers (half the registers of floats for 16-bit inputs)
// and turned into floats with words_to_f32 when used.
template <class Tag, int VPT>
QC_DEV void load_chunk_raw(const char* src, int64_t j0, int64_t n, uint32_t w[4]) {
  const char* p = src + j0 * Tag::kSize;
  if (j0 + VPT <= n && aligned(p, 16)) {
    load16(p, w);
    return;
  }
  const int64_t left = n - j0;
  if (Tag::kSize == 4) {
    const uint32_t* e = reinterpret_cast<const uint32_t*>(p);
    const uint32_t first = e[0];
    QC_UNROLL
    for (int i = 0; i < 4; ++i) w[i] = (i < left) ? e[i] : first;
  } else {
    const uint16_t* e = reinterpret_cast<const uint16_t*>(p);
    const uint32_t first = e[0];
    QC_UNROLL
    for (int i = 0; i < 4; ++i) {
      const uint32_t lo = (2 * i < left) ? e[2 * i] : first;
      const uint32_t hi = (2 * i + 1 < left) ? e[2 * i + 1] : first;
      w[i] = lo | (hi << 16);
    }
  }
}

// Group positions [j0, j0 + VPT) from `src` (the group's first element), j0 < n, as float32.
// Positions >= n get the chunk's first value: they change no max or min, and their codes are
// masked off.
template <class Tag, int VPT>
QC_DEV void load_chunk(const char* src, int64_t j0, int64_t n, float* out) {
  uint32_t w[4];
  load_chunk_raw<Tag, VPT>(src, j0, n, w);
  words_to_f32<Tag>(w, out);
}

// Writes the low `nbytes` bytes of `word` at `dst`; `full` (1, 2, 4 or 8) is a whole chunk's size.
QC_DEV void store_code_bytes(uint8_t* dst, uint64_t word, int nbytes, int full) {
  if (nbytes == full && aligned(dst, full)) {
    switch (full) {
      case 8: *reinterpret_cast<unsigned long long*>(dst) = static_cast<unsigned long long>(word); return;
      case 4: *reinterpret_cast<uint32_t*>(dst) = static_cast<uint32_t>(word); return;
      case 2: *reinterpret_cast<uint16_t*>(dst) = static_cast<uint16_t>(word); return;
      default: *dst = static_cast<uint8_t>(word); return;
    }
  }
  for (int b = 0; b < nbytes; ++b) dst[b] = static_cast<uint8_t>(word >> (8 * b));
}

// Reads `nbytes` bytes at `src` (a whole chunk is `full` bytes: 1, 2, 4 or 8) into a word.
QC_DEV uint64_t load_code_bytes(const uint8_t* src, int nbytes, int full) {
  if (nbytes == full && aligned(src, full)) {
    switch (full) {
      case 8: return static_cast<uint64_t>(*reinterpret_cast<const unsigned long long*>(src));
      case 4: return *reinterpret_cast<const uint32_t*>(src);
      case 2: return *reinterpret_cast<const uint16_t*>(src);
      default: return *src;
    }
  }
  uint64_t word = 0;
  for (int b = 0; b < nbytes; ++b) word |= static_cast<uint64_t>(src[b]) << (8 * b);
  return word;
}

template <class Tag> QC_DEV uint32_t out_bits(float f);
template <> QC_DEV uint32_t out_bits<TagF32>(float f) { return f32_as_u32(f); }
template <> QC_DEV uint32_t out_bits<TagF16>(float f) { return f32_to_f16_bits(f); }
template <> QC_DEV uint32_t out_bits<TagBF16>(float f) { return f32_to_bf16_bits(f); }

// Writes `cnt` (<= VPT) values at `dst`: one 16-byte store when whole and aligned.
template <class Tag, int VPT>
QC_DEV void store_values(char* dst, int64_t cnt, const float* f) {
  if (cnt == VPT && aligned(dst, 16)) {
    uint32_t w[4];
    if (Tag::kSize == 4) {
      QC_UNROLL
      for (int i = 0; i < 4; ++i) w[i] = out_bits<Tag>(f[i]);
    } else {
      QC_UNROLL
      for (int i = 0; i < 4; ++i) w[i] = out_bits<Tag>(f[2 * i]) | (out_bits<Tag>(f[2 * i + 1]) << 16);
    }
    store16(dst, w);
    return;
  }
  for (int i = 0; i < VPT; ++i) {
    if (i >= cnt) break;
    if (Tag::kSize == 4) {
      reinterpret_cast<uint32_t*>(dst)[i] = out_bits<Tag>(f[i]);
    } else {
      reinterpret_cast<uint16_t*>(dst)[i] = static_cast<uint16_t>(out_bits<Tag>(f[i]));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Quantization math.
// ---------------------------------------------------------------------------------------------

// RN(a / d) given y = RN(1 / d), for 2**-40 <= d <= 2**40 and |a / d| in [2**-40, 2**9]
// (two Markstein corrections of RN(a * y); the residuals are exact in that range).
QC_DEV float div_by_reciprocal(float a, float d, float y) {
  float q = f_mul(a, y);
  float r = f_fma(-q, d, a);
  q = f_fma(r, y, q);
  r = f_fma(-q, d, a);
  return f_fma(r, y, q);
}

// Per-lane reduction state: a0 = amax (symmetric) or max (asymmetric), a1 = min (asymmetric),
// bad = sum(x * 0): +0, or NaN when a NaN or an Inf was seen.
struct Reduce {
  float a0;
  float a1;
  float bad;
};

template <class M> QC_DEV Reduce reduce_init() {
  Reduce s;
  s.a0 = M::kSym ? 0.0f : u32_as_f32(0xff800000u);  // |x| >= 0, or -inf
  s.a1 = u32_as_f32(0x7f800000u);                   // +inf
  s.bad = 0.0f;
  return s;
}

// Fast: fmaxf/fminf (exact when no NaN is present) and the NaN/Inf detector.
template <class M> QC_DEV void reduce_fast(Reduce& s, float x) {
  if (M::kSym) {
    s.a0 = f_max(s.a0, f_abs(x));
  } else {
    s.a0 = f_max(s.a0, x);
    s.a1 = f_min(s.a1, x);
  }
  s.bad = f_fma(x, 0.0f, s.bad);
}

// Exact: torch's NaN-propagating amax/amin.
template <class M> QC_DEV void reduce_exact(Reduce& s, float x) {
  if (M::kSym) {
    s.a0 = max_nan(s.a0, f_abs(x));
  } else {
    s.a0 = max_nan(s.a0, x);
    s.a1 = min_nan(s.a1, x);
  }
  s.bad = f_fma(x, 0.0f, s.bad);
}

template <class M, bool EXACT> QC_DEV void reduce_merge(Reduce& s, const Reduce& o) {
  if (EXACT) {
    s.a0 = max_nan(s.a0, o.a0);
    if (!M::kSym) s.a1 = min_nan(s.a1, o.a1);
  } else {
    s.a0 = f_max(s.a0, o.a0);
    if (!M::kSym) s.a1 = f_min(s.a1, o.a1);
  }
  s.bad = f_add(s.bad, o.bad);
}

// Xor-shuffle reduction over aligned teams of `team` lanes; every lane of the warp must call it.
template <class M, bool EXACT> QC_DEV void reduce_team(Reduce& s, int team) {
  for (int off = team >> 1; off > 0; off >>= 1) {
    Reduce o;
    o.a0 = shfl_xor(s.a0, off);
    o.a1 = M::kSym ? s.a1 : shfl_xor(s.a1, off);
    o.bad = shfl_xor(s.bad, off);
    reduce_merge<M, EXACT>(s, o);
  }
}

// What a group's values need once its max/min are known.
struct GroupQuant {
  float scale_out;  // stored scale: scale + sum(x * 0)
  float d;          // divisor: scale > 0 ? scale : 1
  float y;          // RN(1 / d) when `fast`
  float tiny;       // d * 2**-40: below it (in magnitude) stochastic rounding divides exactly
  float minimum;    // asymmetric zero point
  uint32_t seed;
  bool fast;        // finite group and 2**-40 <= d <= 2**40: divide by reciprocal
};

template <class M>
QC_DEV GroupQuant group_quant(const QuantParams& p, const Reduce& s) {
  GroupQuant g;
  // The spec's max and min are +0 when zero, whichever zero the group holds (a select: NaN
  // keeps its bits); amax (symmetric) is never -0.
  const float high = (s.a0 == 0.0f) ? 0.0f : s.a0, low = (s.a1 == 0.0f) ? 0.0f : s.a1;
  const float spread = M::kSym ? s.a0 : f_sub(high, low);  // amax, or amax(-1) - minimum
  const float scale = f_div(spread, p.scale_div);
  g.scale_out = f_add(scale, s.bad);
  g.d = (scale > 0.0f) ? scale : 1.0f;  // torch.where(scales > 0, scales, 1.0)
  g.minimum = M::kSym ? 0.0f : low;
  g.seed = p.seed;
  g.fast = !is_nan(s.bad) && g.d >= 0x1p-40f && g.d <= 0x1p40f;
  g.y = g.fast ? f_rcp(g.d) : 1.0f;
  g.tiny = f_mul(g.d, 0x1p-40f);
  return g;
}

// One value: a 32-bit word whose low `bits` bits are its stored code, q + offset modulo 2**bits
// with q = clamp(round(...)) as in the reference (q + offset is in [0, 2**bits - 1]).
template <class M, bool FAST>
QC_DEV uint32_t quant_code(const GroupQuant& g, float x, int64_t index) {
  const float a = M::kSym ? x : f_sub(x, g.minimum);  // shifted = grouped - minimum
  float t;
  if (!FAST) {
    t = f_div(a, g.d);
  } else if (M::kStoch && !(f_abs(a) >= g.tiny || a == 0.0f)) {
    t = f_div(a, g.d);  // a tiny quotient: its sign matters to floor(t + u)
  } else {
    t = div_by_reciprocal(a, g.d, g.y);
  }
  if (M::kStoch) t = f_add(t, aiflow_noise::uniform(g.seed, index));
  // nan_to_num(..., nan=0) after the clamp. A fast group is finite with |a / d| <= 2**9: no NaN.
  if (!FAST && is_nan(t)) t = 0.0f;
  t = f_min(f_max(t, static_cast<float>(M::kLow)), static_cast<float>(M::kHigh));
  if (M::kStoch) return static_cast<uint32_t>(f_floor_int(t) + M::kOffset);
  // t + (1.5 * 2**23 + offset) lies in [2**23, 2**24), where the float add rounds to an integer,
  // half to even (the constant is even): its low bits are round(t) + offset.
  return f32_as_u32(f_add(t, 12582912.0f + static_cast<float>(M::kOffset)));
}

// Codes of group positions [j0, j0 + cnt) (1 <= cnt <= VPT) held in `v`, packed and stored.
template <class M, bool FAST, int VPT>
QC_DEV void quant_store_chunk(const GroupQuant& g, const float* v, int64_t j0, int64_t cnt,
                              int64_t index0, uint8_t* group_dst) {
  uint64_t word = 0;
  QC_UNROLL
  for (int i = 0; i < VPT; ++i) {
    const uint32_t code = quant_code<M, FAST>(g, v[i], index0 + i) & M::kMask;
    word |= static_cast<uint64_t>(code) << (i * M::kBits);
  }
  if (cnt < VPT) word &= (static_cast<uint64_t>(1) << (cnt * M::kBits)) - 1;  // unused bits: 0
  constexpr int kFull = (VPT * M::kBits) / 8;
  const int nbytes = static_cast<int>((cnt * M::kBits + 7) / 8);
  store_code_bytes(group_dst + (j0 * M::kBits) / 8, word, nbytes, kFull);
}

// ---------------------------------------------------------------------------------------------
// Kernels.
// ---------------------------------------------------------------------------------------------

// Where the group `gid` of a (rows x num_groups) grid is: row r, group g, n values (0: none).
QC_DEV void locate_group(const QuantParams& p, int64_t gid, int64_t total, int64_t& r, int64_t& g,
                         int64_t& n) {
  r = 0;
  g = 0;
  n = 0;
  if (gid < total) {
    divmod(gid, p.num_groups, r, g);
    n = (g == p.num_groups - 1) ? p.row_len - g * p.group_size : p.group_size;
  }
}

// The raw chunks a team lane holds of group (r, g) with n values: chunk c covers group positions
// [(c*team + team_lane)*VPT, +VPT); chunks at or past n are not loaded.
template <class Tag, int VPT, int CH>
QC_DEV void load_team_chunks(const QuantParams& p, int64_t r, int64_t g, int64_t n, int team,
                             int team_lane, uint32_t raw[CH][4]) {
  const char* src = static_cast<const char*>(p.x) + (r * p.x_row_stride + g * p.group_size) * Tag::kSize;
  QC_UNROLL
  for (int c = 0; c < CH; ++c) {
    const int64_t j0 = static_cast<int64_t>(c * team + team_lane) * VPT;
    if (j0 < n) {
      load_chunk_raw<Tag, VPT>(src, j0, n, raw[c]);
    } else {
      raw[c][0] = raw[c][1] = raw[c][2] = raw[c][3] = 0;
    }
  }
}

// The max/min (and NaN/Inf detector) of a group of n values over its team, from each lane's
// chunks `raw`: fmaxf/fminf, or with EXACT torch's NaN-propagating max/min. Every lane of the
// warp must call it: it shuffles.
template <class Tag, class M, bool EXACT, int VPT, int CH>
QC_DEV Reduce reduce_team_chunks(int64_t n, int team, int team_lane, const uint32_t raw[CH][4]) {
  Reduce s = reduce_init<M>();
  QC_UNROLL
  for (int c = 0; c < CH; ++c) {
    if (static_cast<int64_t>(c * team + team_lane) * VPT < n) {
      float v[VPT];
      words_to_f32<Tag>(raw[c], v);
      QC_UNROLL
      for (int i = 0; i < VPT; ++i) {
        if (EXACT) {
          reduce_exact<M>(s, v[i]);
        } else {
          reduce_fast<M>(s, v[i]);
        }
      }
    }
  }
  reduce_team<M, EXACT>(s, team);
  return s;
}

// The codes of a team lane's chunks `raw` of a group of n values, packed into the group's bytes.
template <class Tag, class M, bool FAST, int VPT, int CH>
QC_DEV void store_team_chunks(const GroupQuant& q, int64_t n, int team, int team_lane,
                              const uint32_t raw[CH][4], int64_t index_base, uint8_t* dst) {
  QC_UNROLL
  for (int c = 0; c < CH; ++c) {
    const int64_t j0 = static_cast<int64_t>(c * team + team_lane) * VPT;
    if (j0 < n) {
      float v[VPT];
      words_to_f32<Tag>(raw[c], v);
      const int64_t cnt = (n - j0 < VPT) ? n - j0 : VPT;
      quant_store_chunk<M, FAST, VPT>(q, v, j0, cnt, index_base + j0, dst);
    }
  }
}

// One group of a team: row r, group g, n values (n = 0: an idle team), whose chunks `raw` this
// team lane holds (load_team_chunks). Reduces over the team, then writes the group's scale (and
// zero point) and codes. Every lane of the warp must call it: it shuffles.
template <class Tag, class M, int VPT, int CH>
QC_DEV void quantize_team_group(const QuantParams& p, int64_t r, int64_t g, int64_t n, int team,
                                int team_lane, const uint32_t raw[CH][4]) {
  Reduce s = reduce_team_chunks<Tag, M, false, VPT, CH>(n, team, team_lane, raw);
  if (warp_any(is_nan(s.bad))) {  // warp-uniform: redo with NaN-propagating max/min
    s = reduce_team_chunks<Tag, M, true, VPT, CH>(n, team, team_lane, raw);
  }

  if (n > 0) {  // no shuffle in here
    const GroupQuant q = group_quant<M>(p, s);
    if (team_lane == 0) {
      p.scales[r * p.scales_row_stride + g] = q.scale_out;
      if (!M::kSym) p.zero_points[r * p.zero_points_row_stride + g] = q.minimum;
    }
    uint8_t* dst = p.codes + r * p.codes_row_stride + g * p.group_bytes;
    const int64_t index_base = r * p.row_len + g * p.group_size;
    if (q.fast) {
      store_team_chunks<Tag, M, true, VPT, CH>(q, n, team, team_lane, raw, index_base, dst);
    } else {
      store_team_chunks<Tag, M, false, VPT, CH>(q, n, team, team_lane, raw, index_base, dst);
    }
  }
}

// Quantize, group_size <= kRegisterGroupMax: `team` lanes per group (team * 32 >= group_size).
// Each lane loads the next group's chunks before it processes the current one, so that loads are
// in flight while it computes.
template <class Tag, class M>
QC_KERNEL void QC_LAUNCH_BOUNDS(kTeamThreads) quantize_team_kernel(const QuantParams p, const int team) {
  constexpr int VPT = 16 / Tag::kSize;
  constexpr int CH = kValuesPerLane / VPT;
  const int lane = thread_idx() & (kWarp - 1);
  const int team_lane = lane & (team - 1);
  const int team_in_warp = lane / team;
  const int teams_per_warp = kWarp / team;
  const int64_t warp = (static_cast<int64_t>(block_idx()) * block_dim() + thread_idx()) / kWarp;
  const int64_t step = (static_cast<int64_t>(grid_dim()) * block_dim()) / kWarp * teams_per_warp;
  const int64_t total = p.rows * p.num_groups;

  int64_t base = warp * teams_per_warp;
  int64_t r, g, n;
  locate_group(p, base + team_in_warp, total, r, g, n);
  uint32_t raw[CH][4];
  load_team_chunks<Tag, VPT, CH>(p, r, g, n, team, team_lane, raw);

  // `base < total` is the same for every lane of the warp: all lanes reach every shuffle.
  for (; base < total; base += step) {
    int64_t next_r, next_g, next_n;
    locate_group(p, base + step + team_in_warp, total, next_r, next_g, next_n);
    uint32_t next_raw[CH][4];
    load_team_chunks<Tag, VPT, CH>(p, next_r, next_g, next_n, team, team_lane, next_raw);

    quantize_team_group<Tag, M, VPT, CH>(p, r, g, n, team, team_lane, raw);

    r = next_r;
    g = next_g;
    n = next_n;
    QC_UNROLL
    for (int c = 0; c < CH; ++c) {
      QC_UNROLL
      for (int k = 0; k < 4; ++k) raw[c][k] = next_raw[c][k];
    }
  }
}

// Quantize, any group size (used above kRegisterGroupMax): one block per group, two passes.
template <class Tag, class M>
QC_KERNEL void QC_LAUNCH_BOUNDS(kBlockThreadsMax) quantize_block_kernel(const QuantParams p) {
  constexpr int VPT = 16 / Tag::kSize;
  QC_SHARED float red[3][kWarp];
  const int tid = thread_idx();
  const int nthreads = block_dim();
  const int lane = tid & (kWarp - 1);
  const int warp = tid / kWarp;
  const int nwarps = nthreads / kWarp;
  const int64_t total = p.rows * p.num_groups;
  const char* x = static_cast<const char*>(p.x);
  const int64_t step = static_cast<int64_t>(nthreads) * VPT;

  for (int64_t gid = block_idx(); gid < total; gid += grid_dim()) {  // block-uniform
    int64_t r, g;
    divmod(gid, p.num_groups, r, g);
    const int64_t n = (g == p.num_groups - 1) ? p.row_len - g * p.group_size : p.group_size;
    const int64_t gstart = g * p.group_size;
    const char* src = x + (r * p.x_row_stride + gstart) * Tag::kSize;

    Reduce s = reduce_init<M>();
    for (int64_t j0 = static_cast<int64_t>(tid) * VPT; j0 < n; j0 += step) {
      float v[VPT];
      load_chunk<Tag, VPT>(src, j0, n, v);
      QC_UNROLL
      for (int i = 0; i < VPT; ++i) reduce_exact<M>(s, v[i]);
    }
    reduce_team<M, true>(s, kWarp);
    if (lane == 0) {
      red[0][warp] = s.a0;
      red[1][warp] = s.a1;
      red[2][warp] = s.bad;
    }
    sync_block();
    s.a0 = red[0][0];
    s.a1 = red[1][0];
    s.bad = red[2][0];
    for (int w = 1; w < nwarps; ++w) {  // the same order in every thread: the same result
      Reduce o;
      o.a0 = red[0][w];
      o.a1 = red[1][w];
      o.bad = red[2][w];
      reduce_merge<M, true>(s, o);
    }
    sync_block();  // red[] is rewritten for the next group

    const GroupQuant q = group_quant<M>(p, s);
    if (tid == 0) {
      p.scales[r * p.scales_row_stride + g] = q.scale_out;
      if (!M::kSym) p.zero_points[r * p.zero_points_row_stride + g] = q.minimum;
    }
    uint8_t* dst = p.codes + r * p.codes_row_stride + g * p.group_bytes;
    const int64_t index_base = r * p.row_len + gstart;
    for (int64_t j0 = static_cast<int64_t>(tid) * VPT; j0 < n; j0 += step) {
      float v[VPT];
      load_chunk<Tag, VPT>(src, j0, n, v);
      const int64_t cnt = (n - j0 < VPT) ? n - j0 : VPT;
      if (q.fast) {
        quant_store_chunk<M, true, VPT>(q, v, j0, cnt, index_base + j0, dst);
      } else {
        quant_store_chunk<M, false, VPT>(q, v, j0, cnt, index_base + j0, dst);
      }
    }
  }
}

// Dequantize: `p.team` lanes per (row, group, segment) item; no cross-lane traffic.
template <class OutTag, int BITS, bool SYM>
QC_KERNEL void QC_LAUNCH_BOUNDS(kTeamThreads) dequantize_kernel(const DequantParams p) {
  constexpr int VPT = 16 / OutTag::kSize;
  constexpr int CH = kDequantChunks;
  constexpr int kFull = (VPT * BITS) / 8;
  constexpr uint32_t kMask = (1u << BITS) - 1u;
  // float(code - offset) = bits(2**23 + code) - (2**23 + offset): exact, code < 2**23.
  constexpr float kBias = 8388608.0f + (SYM ? static_cast<float>(1 << (BITS - 1)) : 0.0f);
  const int team = p.team;
  const int team_lane = thread_idx() & (team - 1);
  const int64_t first = (static_cast<int64_t>(block_idx()) * block_dim() + thread_idx()) / team;
  const int64_t teams = (static_cast<int64_t>(grid_dim()) * block_dim()) / team;
  const int64_t total = p.rows * p.num_groups * p.segments_per_group;

  for (int64_t item = first; item < total; item += teams) {
    int64_t gid, seg, r, g;
    divmod(item, p.segments_per_group, gid, seg);
    divmod(gid, p.num_groups, r, g);
    const int64_t gstart = g * p.group_size;
    const int64_t n = (g == p.num_groups - 1) ? p.row_len - gstart : p.group_size;
    const int64_t jb = seg * p.segment;
    const int64_t je = (n < jb + p.segment) ? n : jb + p.segment;
    if (jb >= je) continue;
    const float scale = p.scales[r * p.scales_row_stride + g];
    const float zero = SYM ? 0.0f : p.zero_points[r * p.zero_points_row_stride + g];
    const uint8_t* src = p.codes + r * p.codes_row_stride + g * p.group_bytes;
    char* dst = static_cast<char*>(p.out) + (r * p.out_row_stride + gstart) * OutTag::kSize;

    uint64_t words[CH];
    QC_UNROLL
    for (int c = 0; c < CH; ++c) {  // every load first: they are in flight together
      const int64_t j0 = jb + static_cast<int64_t>(c * team + team_lane) * VPT;
      words[c] = 0;
      if (j0 < je) {
        const int64_t cnt = (je - j0 < VPT) ? je - j0 : VPT;
        words[c] = load_code_bytes(src + (j0 * BITS) / 8, static_cast<int>((cnt * BITS + 7) / 8), kFull);
      }
    }
    QC_UNROLL
    for (int c = 0; c < CH; ++c) {
      const int64_t j0 = jb + static_cast<int64_t>(c * team + team_lane) * VPT;
      if (j0 < je) {
        const int64_t cnt = (je - j0 < VPT) ? je - j0 : VPT;
        float f[VPT];
        QC_UNROLL
        for (int i = 0; i < VPT; ++i) {
          const uint32_t code = static_cast<uint32_t>(words[c] >> (i * BITS)) & kMask;
          const float value = f_sub(u32_as_f32(0x4B000000u | code), kBias);  // exact
          const float scaled = f_mul(value, scale);                           // values * scales
          f[i] = SYM ? scaled : f_add(scaled, zero);                          // + zero_points
        }
        store_values<OutTag, VPT>(dst + j0 * OutTag::kSize, cnt, f);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Host-side choices (plain C++, shared by quant_cuda.cu, fused_cuda.cu and the emulator).
// ---------------------------------------------------------------------------------------------

// GroupLayout (aiflow_comm/kernels/layout.py) of rows of `row_len` values. `group_size` here is
// min(group_size, row_len): a group size >= row_len gives one group of row_len values, the same
// layout.
struct RowLayout {
  int64_t row_len = 0;
  int64_t group_size = 1;
  int64_t num_groups = 0;
  int64_t group_bytes = 0;
  int64_t row_bytes = 0;
};

inline RowLayout row_layout(int64_t row_len, int64_t bits, int64_t group_size) {
  RowLayout l;
  l.row_len = row_len;
  const int64_t longest = row_len > 1 ? row_len : 1;
  l.group_size = group_size < longest ? group_size : longest;
  l.num_groups = row_len / l.group_size + (row_len % l.group_size != 0 ? 1 : 0);
  l.group_bytes = (l.group_size * bits + 7) / 8;
  if (l.num_groups > 0) {
    const int64_t last = row_len - (l.num_groups - 1) * l.group_size;
    l.row_bytes = (l.num_groups - 1) * l.group_bytes + (last * bits + 7) / 8;
  }
  return l;
}

// Copies layout `l` into the parameters of a kernel (QuantParams or DequantParams).
template <class Params>
inline void set_layout(Params& p, const RowLayout& l) {
  p.row_len = l.row_len;
  p.group_size = l.group_size;
  p.num_groups = l.num_groups;
  p.group_bytes = l.group_bytes;
}

// Blocks for a grid-stride loop over `items` work items, `per_block` per block: no more than
// `resident`, one full wave of resident blocks.
inline unsigned grid_size(int64_t items, int64_t per_block, int64_t resident) {
  const int64_t wanted = (items + per_block - 1) / per_block;
  const int64_t blocks = wanted < resident ? wanted : resident;
  return static_cast<unsigned>(blocks > 1 ? blocks : 1);
}

inline int pow2_ceil_capped(int64_t v) {
  int t = 1;
  while (t < v && t < kWarp) t <<= 1;
  return t;
}

// Lanes per group of the quantize team kernel (group_size <= kRegisterGroupMax).
inline int quantize_team_size(int64_t group_size) {
  return pow2_ceil_capped((group_size + kValuesPerLane - 1) / kValuesPerLane);
}

// Threads per block of the quantize block kernel (group_size > kRegisterGroupMax): a multiple of 32,
// about two chunks of 16 bytes per thread, at most kBlockThreadsMax.
inline int quantize_block_threads(int64_t group_size, int in_elem_size) {
  const int64_t chunks = (group_size + 16 / in_elem_size - 1) / (16 / in_elem_size);
  const int64_t warps = (chunks + 2 * kWarp - 1) / (2 * kWarp);
  return static_cast<int>(kWarp * (warps < 2 ? 2 : (warps > kBlockThreadsMax / kWarp ? kBlockThreadsMax / kWarp : warps)));
}

// Lanes per item of the dequantize kernel.
inline int dequantize_team_size(int64_t group_size, int out_elem_size) {
  const int64_t per_lane = static_cast<int64_t>(16 / out_elem_size) * kDequantChunks;
  return pow2_ceil_capped((group_size + per_lane - 1) / per_lane);
}

// Sets the dequantize kernel's work split in `p` (team, segment, segments per group) for output
// elements of `out_elem_size` bytes, and returns the number of work items.
inline int64_t plan_dequantize(DequantParams& p, int out_elem_size) {
  p.team = dequantize_team_size(p.group_size, out_elem_size);
  p.segment = static_cast<int64_t>(p.team) * (16 / out_elem_size) * kDequantChunks;
  p.segments_per_group = (p.group_size + p.segment - 1) / p.segment;
  return p.rows * p.num_groups * p.segments_per_group;
}

using QuantTeamKernel = void (*)(const QuantParams, const int);
using QuantBlockKernel = void (*)(const QuantParams);
using DequantKernel = void (*)(const DequantParams);

struct QuantKernels {
  QuantTeamKernel team;
  QuantBlockKernel block;
};

template <class Tag, int BITS, bool SYM>
inline QuantKernels quant_kernels_for_stoch(bool stochastic) {
  if (stochastic) {
    return {quantize_team_kernel<Tag, Mode<BITS, SYM, true>>, quantize_block_kernel<Tag, Mode<BITS, SYM, true>>};
  }
  return {quantize_team_kernel<Tag, Mode<BITS, SYM, false>>, quantize_block_kernel<Tag, Mode<BITS, SYM, false>>};
}

template <class Tag, int BITS>
inline QuantKernels quant_kernels_for_sym(bool symmetric, bool stochastic) {
  return symmetric ? quant_kernels_for_stoch<Tag, BITS, true>(stochastic)
                   : quant_kernels_for_stoch<Tag, BITS, false>(stochastic);
}

// The quantize kernels for an input type and a scheme (bits must be 2, 4 or 8).
template <class Tag>
inline QuantKernels quant_kernels_for(int bits, bool symmetric, bool stochastic) {
  switch (bits) {
    case 2: return quant_kernels_for_sym<Tag, 2>(symmetric, stochastic);
    case 4: return quant_kernels_for_sym<Tag, 4>(symmetric, stochastic);
    default: return quant_kernels_for_sym<Tag, 8>(symmetric, stochastic);
  }
}

// The dequantize kernel for an output type and a scheme (bits must be 2, 4 or 8).
template <class Tag>
inline DequantKernel dequant_kernel_for(int bits, bool symmetric) {
  switch (bits) {
    case 2: return symmetric ? dequantize_kernel<Tag, 2, true> : dequantize_kernel<Tag, 2, false>;
    case 4: return symmetric ? dequantize_kernel<Tag, 4, true> : dequantize_kernel<Tag, 4, false>;
    default: return symmetric ? dequantize_kernel<Tag, 8, true> : dequantize_kernel<Tag, 8, false>;
  }
}

}  // namespace qc
