// CPU group quantization: quantize+pack and unpack+dequantize, parallel over groups with
// at::parallel_for (OpenMP), inner loops written as plain lane-wise loops the compiler vectorizes,
// plus an AVX-512 path for round-to-nearest quantization of groups of whole 16-value blocks.
// Bit-exact with aiflow_comm/kernels/reference.py: IEEE float32 division, round half to even,
// no fused multiply-add (built with -ffp-contract=off, never with -ffast-math).
#include "quant.h"
#include "stochastic_noise.h"

#include <ATen/Parallel.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <sys/mman.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
#include <immintrin.h>
#define AIFLOW_AVX512 1
#endif

namespace {

constexpr int64_t kChunk = 2048;            // values converted to float32 at a time
constexpr float kRoundMagic = 12582912.0f;  // 1.5 * 2^23: (v + M) - M rounds half to even
constexpr int64_t kWorkPerTask = 32768;     // values per parallel task, at least

struct Layout {
  int64_t rows, row_len, bits, group_size, groups, group_bytes, row_bytes;
};

Layout layout_of(int64_t rows, int64_t row_len, int64_t bits, int64_t group_size) {
  Layout l{rows, row_len, bits, group_size, 0, 0, 0};
  l.groups = row_len > 0 ? (row_len + group_size - 1) / group_size : 0;
  l.group_bytes = (group_size * bits + 7) / 8;
  if (l.groups > 0) {
    const int64_t last = row_len - (l.groups - 1) * group_size;
    l.row_bytes = (l.groups - 1) * l.group_bytes + (last * bits + 7) / 8;
  }
  return l;
}

inline float round_half_even(float v) { return (v + kRoundMagic) - kRoundMagic; }

inline float round_down(float v) {
  const float r = round_half_even(v);
  return r > v ? r - 1.0f : r;
}

// Clamp that sends NaN (as from inf / inf, or a NaN in the group) to 0, the reference's
// nan_to_num after its clamp; the forms map onto SIMD compare, blend and max/min instructions.
inline float clamp_to(float v, float lo, float hi) {
  v = v == v ? v : 0.0f;
  v = v > lo ? v : lo;
  return v < hi ? v : hi;
}

// The low bits of a float in [2^23, 2^24) are its integer value minus 2^23 (here: minus M).
inline uint32_t low_bits(float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  return bits;
}

template <typename T>
inline void load_floats(const T* src, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(src[i]);
}

// bfloat16 is the top half of a float32: a shift the vectorizer handles (c10's conversion isn't).
inline void load_floats(const c10::BFloat16* src, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t bits = static_cast<uint32_t>(src[i].x) << 16;
    std::memcpy(out + i, &bits, sizeof bits);
  }
}

#ifdef __FLT16_MAX__
// The compiler's own half type converts exactly, with F16C/AVX-512 instructions where enabled.
inline void load_floats(const c10::Half* src, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) {
    _Float16 h;
    std::memcpy(&h, &src[i].x, sizeof h);
    out[i] = static_cast<float>(h);
  }
}
#endif

template <int BITS>
inline void pack(const uint8_t* codes, int64_t n, uint8_t* dst) {
  constexpr int64_t per = 8 / BITS;
  const int64_t whole = n / per;
  for (int64_t j = 0; j < whole; ++j) {
    uint32_t byte = 0;
    for (int64_t k = 0; k < per; ++k) byte |= static_cast<uint32_t>(codes[j * per + k]) << (k * BITS);
    dst[j] = static_cast<uint8_t>(byte);
  }
  if (whole * per < n) {
    uint32_t byte = 0;
    for (int64_t k = 0; whole * per + k < n; ++k) {
      byte |= static_cast<uint32_t>(codes[whole * per + k]) << (k * BITS);
    }
    dst[whole] = static_cast<uint8_t>(byte);
  }
}

// Float statistics computed on integer keys: integer min/max may be reordered, so the compiler
// vectorizes these reductions (float ones it may not, for NaN's sake). A key orders like its float
// for every non-NaN value; NaN keys lie beyond those of the infinities.
inline int32_t order_key(float x) {
  int32_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  return bits ^ ((bits >> 31) & 0x7FFFFFFF);
}

inline float float_of_key(int32_t key) {
  const int32_t bits = key ^ ((key >> 31) & 0x7FFFFFFF);
  float x;
  std::memcpy(&x, &bits, sizeof x);
  return x;
}

constexpr int32_t kPosInfKey = 0x7F800000;
constexpr int32_t kNegInfKey = static_cast<int32_t>(0xFF800000u ^ 0x7FFFFFFFu);

// Running key of max|x| (symmetric; |x|'s key is its bit pattern) or of min x and max x.
template <bool SYM>
inline __attribute__((always_inline)) void accumulate(const float* v, int64_t n, int32_t& low,
                                                      int32_t& high) {
  int32_t lo = low, hi = high;
  for (int64_t i = 0; i < n; ++i) {
    if (SYM) {
      int32_t bits;
      std::memcpy(&bits, v + i, sizeof bits);
      const int32_t magnitude = bits & 0x7FFFFFFF;
      hi = magnitude > hi ? magnitude : hi;
    } else {
      const int32_t key = order_key(v[i]);
      hi = key > hi ? key : hi;
      lo = key < lo ? key : lo;
    }
  }
  low = lo;
  high = hi;
}

// Float32 values of src[start, start + len): src itself when T is float, else converted into buf.
template <typename T>
inline const float* floats_of(const T* src, int64_t start, int64_t len, float* buf) {
  if constexpr (std::is_same_v<T, float>) {
    return src + start;
  } else {
    load_floats(src + start, len, buf);
    return buf;
  }
}

// The code range: q in [lo, hi] is stored as q + offset.
template <int BITS, bool SYM>
struct CodeRange {
  static constexpr float qmax = static_cast<float>((1 << (BITS - 1)) - 1);
  static constexpr float levels = static_cast<float>((1 << BITS) - 1);
  static constexpr float lo = SYM ? -qmax : 0.0f;
  static constexpr float hi = SYM ? qmax : levels;
  static constexpr int32_t offset = SYM ? 1 << (BITS - 1) : 0;
};

// A group's parameters from its statistics' keys: q = (x - shift) / safe.
struct GroupScale {
  bool finite;  // no NaN or Inf in the group
  float scale, safe, shift;
};

// +0 for either zero (a select: NaN keeps its bits). The spec's max and min of a group are +0
// when zero, whichever zero the group holds: the keys order -0 below +0.
inline float positive_zero(float x) { return x == 0.0f ? 0.0f : x; }

template <int BITS, bool SYM>
GroupScale group_scale(int32_t low_key, int32_t high_key) {
  using R = CodeRange<BITS, SYM>;
  const float high = positive_zero(float_of_key(high_key));  // symmetric: |x|'s bits, its key
  const float low = positive_zero(float_of_key(low_key));
  const float scale = SYM ? high / R::qmax : (high - low) / R::levels;
  // The minimum is NaN when the group holds a NaN, as torch's amin makes it: a negative NaN's key
  // is the lowest already; a positive NaN's is the highest, beyond +inf's.
  const float minimum = high_key > kPosInfKey ? std::numeric_limits<float>::quiet_NaN() : low;
  // NaN or Inf anywhere in the group: a key at or beyond an infinity's.
  return {SYM ? high_key < kPosInfKey : high_key < kPosInfKey && low_key > kNegInfKey, scale,
          scale > 0.0f ? scale : 1.0f, SYM ? 0.0f : minimum};
}

template <typename T, int BITS, bool SYM, bool STOCH>
void quantize_group(const T* src, int64_t n, int64_t first_index, uint32_t seed, uint8_t* dst,
                    float* scale_out, float* zero_out, float* buf, uint8_t* codes) {
  using R = CodeRange<BITS, SYM>;
  int32_t low_key = kPosInfKey + 1, high_key = SYM ? 0 : kNegInfKey - 1;
  const float* v = nullptr;
  for (int64_t start = 0; start < n; start += kChunk) {
    const int64_t len = std::min(kChunk, n - start);
    v = floats_of(src, start, len, buf);
    accumulate<SYM>(v, len, low_key, high_key);
  }
  const GroupScale g = group_scale<BITS, SYM>(low_key, high_key);
  // Adding M + offset to an integer-valued float in [lo, hi] leaves code = q + offset in the low
  // bits; adding it to a clamped non-integer rounds half to even (M and offset are even).
  constexpr float kBias = kRoundMagic + static_cast<float>(R::offset);
  constexpr uint32_t kCodeMask = (1u << BITS) - 1u;
  *scale_out = g.finite ? g.scale : std::numeric_limits<float>::quiet_NaN();
  if (!SYM) *zero_out = g.shift;

  for (int64_t start = 0; start < n; start += kChunk) {
    const int64_t len = std::min(kChunk, n - start);
    if (n > kChunk) v = floats_of(src, start, len, buf);
    uint8_t* out = BITS == 8 ? dst + start : codes;
    for (int64_t i = 0; i < len; ++i) {
      float q = SYM ? v[i] / g.safe : (v[i] - g.shift) / g.safe;
      if (STOCH) q = round_down(q + aiflow_noise::uniform(seed, first_index + start + i));
      out[i] = static_cast<uint8_t>(low_bits(clamp_to(q, R::lo, R::hi) + kBias) & kCodeMask);
    }
    if (BITS != 8) pack<BITS>(codes, len, dst + start * BITS / 8);
  }
}

#ifdef AIFLOW_AVX512
// AVX-512 path for round-to-nearest groups of a multiple of 16 values, 16 values per register.
// Its codes equal the portable loop's: same statistics (integer keys), same scale, and either the
// same quotient q = d / scale (d = x - shift), clamp and round half to even, or, faster where it
// provably rounds alike, q' = d * r with r = fl(1 / scale):
//   With scale and r normal, r = (1 / scale)(1 + e1) and q' = (d / scale)(1 + e1)(1 + e2), the
//   correctly rounded q = (d / scale)(1 + e3), each |e| <= 2^-24 (a product in the subnormal
//   range errs by at most 2^-150 instead). d is at most the range the scale was made from (|x| <=
//   amax; x - min <= max - min, both rounded alike), so |d / scale| <= hi / (1 - 2^-24) < 256
//   and |q' - q| < 3.1 * 2^-24 * 256 < 2^-14. Where q' is at least 2^-12 from every half-integer,
//   q lies between the same two half-integers: both round to rint(q'), which is in [lo, hi] as
//   |q'| < hi + 0.5 and q' >= 0 when asymmetric (so no clamp is needed). Any 16 values holding a
//   q' closer to a half-integer (ties included; about 1 value in 2000) are divided instead.
template <typename T>
constexpr bool kSimdLoads = std::is_same_v<T, float> || std::is_same_v<T, c10::BFloat16> ||
                            std::is_same_v<T, c10::Half>;

inline __m512 load16(const float* p) { return _mm512_loadu_ps(p); }

inline __m512 load16(const c10::BFloat16* p) {
  const __m512i h = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  return _mm512_castsi512_ps(_mm512_slli_epi32(h, 16));
}

inline __m512 load16(const c10::Half* p) {
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}

// Reading ahead of the hardware prefetcher: on a large input, groups otherwise wait on memory
// (measured: about twice the time of a plain read at 64 MiB without it, near that read with it).
constexpr int64_t kPrefetchBytes = 4096;

// The keys accumulate() finds: max |x| bits (symmetric) or min and max order_key(x).
template <typename T, bool SYM>
void stats16(const T* src, int64_t n, int32_t& low_key, int32_t& high_key) {
  const __m512i magnitude = _mm512_set1_epi32(0x7FFFFFFF);
  __m512i lo = _mm512_set1_epi32(kPosInfKey + 1), hi = _mm512_set1_epi32(SYM ? 0 : kNegInfKey - 1);
  for (int64_t i = 0; i < n; i += 16) {
    _mm_prefetch(reinterpret_cast<const char*>(src + i) + kPrefetchBytes, _MM_HINT_T0);
    const __m512i bits = _mm512_castps_si512(load16(src + i));
    if (SYM) {
      hi = _mm512_max_epi32(hi, _mm512_and_si512(bits, magnitude));
    } else {
      const __m512i sign = _mm512_srai_epi32(bits, 31);
      const __m512i key = _mm512_xor_si512(bits, _mm512_and_si512(sign, magnitude));
      hi = _mm512_max_epi32(hi, key);
      lo = _mm512_min_epi32(lo, key);
    }
  }
  low_key = _mm512_reduce_min_epi32(lo);
  high_key = _mm512_reduce_max_epi32(hi);
}

// Stores the low BITS bits of 16 lanes packed as pack() does: code k of a byte in bits
// [k * BITS, (k + 1) * BITS).
template <int BITS>
void store16(__m512i lanes, uint8_t* dst) {
  if constexpr (BITS == 8) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst), _mm512_cvtepi32_epi8(lanes));
    return;
  }
  const __m512i codes = _mm512_and_si512(lanes, _mm512_set1_epi32((1 << BITS) - 1));
  if constexpr (BITS == 4) {
    // The odd code of each 64-bit lane moves from bit 32 to bit 4; the low byte holds the pair.
    const __m512i pairs = _mm512_or_si512(codes, _mm512_srli_epi64(codes, 28));
    _mm_storel_epi64(reinterpret_cast<__m128i*>(dst), _mm512_cvtepi64_epi8(pairs));
  } else {
    // Pairs in the low 4 bits of each 64-bit lane, then pairs of pairs in each 16-bit lane.
    const __m512i pair_lanes = _mm512_or_si512(codes, _mm512_srli_epi64(codes, 30));
    const __m128i pairs = _mm512_cvtepi64_epi8(pair_lanes);
    const __m128i quads = _mm_cvtepi16_epi8(_mm_or_si128(pairs, _mm_srli_epi16(pairs, 4)));
    const int32_t bytes = _mm_cvtsi128_si32(quads);
    std::memcpy(dst, &bytes, sizeof bytes);
  }
}

template <typename T, bool SYM>
inline __m512 shifted16(const T* src, __m512 shift) {
  const __m512 x = load16(src);
  return SYM ? x : _mm512_sub_ps(x, shift);
}

// Quantizes a finite group as quantize_group<T, BITS, SYM, false> does; returns false, writing
// nothing, for a group holding NaN or Inf (the portable code then handles it).
template <typename T, int BITS, bool SYM>
bool quantize_group_avx512(const T* src, int64_t n, uint8_t* dst, float* scale_out,
                           float* zero_out) {
  using R = CodeRange<BITS, SYM>;
  int32_t low_key, high_key;
  stats16<T, SYM>(src, n, low_key, high_key);
  const GroupScale g = group_scale<BITS, SYM>(low_key, high_key);
  if (!g.finite) return false;
  *scale_out = g.scale;
  if (!SYM) *zero_out = g.shift;
  const float recip = 1.0f / g.scale;
  const bool multiply = std::isnormal(g.scale) && std::isnormal(recip);
  const __m512 shift = _mm512_set1_ps(g.shift), r = _mm512_set1_ps(recip);
  const __m512 divisor = _mm512_set1_ps(g.safe), near_half = _mm512_set1_ps(0.5f - 0x1p-12f);
  const __m512 lo = _mm512_set1_ps(R::lo), hi = _mm512_set1_ps(R::hi);
  // q' + M + offset lies in [2^23, 2^24), where floats are spaced 1 apart: the sum rounds half to
  // even (M and offset are even) and its low bits hold the code rint(q') + offset.
  const __m512 bias = _mm512_set1_ps(kRoundMagic + R::offset);
  for (int64_t i = 0; i < n; i += 16) {
    const __m512 d = shifted16<T, SYM>(src + i, shift);
    const __m512 q = _mm512_mul_ps(d, r);
    const __m512 biased = _mm512_add_ps(q, bias);
    const __m512 off_integer = _mm512_abs_ps(_mm512_sub_ps(q, _mm512_sub_ps(biased, bias)));
    __m512i codes = _mm512_castps_si512(biased);
    if (!multiply || _mm512_cmp_ps_mask(off_integer, near_half, _CMP_GT_OQ)) {
      // The portable loop's codes: divide, clamp, round, offset (a finite group: no NaN).
      const __m512 quotient = _mm512_div_ps(d, divisor);
      const __m512 clamped = _mm512_min_ps(_mm512_max_ps(quotient, lo), hi);
      codes = _mm512_add_epi32(
          _mm512_cvt_roundps_epi32(clamped, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC),
          _mm512_set1_epi32(R::offset));
    }
    store16<BITS>(codes, dst + i * BITS / 8);
  }
  return true;
}
#endif

// Quantizes groups [begin, end) of the rows at xp (row r at xp + r * row_stride), numbered row by
// row, into the codes, scales and zero points of a contiguous (rows, row_bytes) / (rows, groups)
// layout. Serial: quantize_all runs it on each parallel task, fused_cpu.cpp on each row block.
template <typename T, int BITS, bool SYM, bool STOCH>
void quantize_items(const T* xp, int64_t row_stride, const Layout& l, uint32_t seed, uint8_t* cp,
                    float* sp, float* zp, int64_t begin, int64_t end) {
  float buf[kChunk];
  uint8_t staged[kChunk];
  for (int64_t item = begin; item < end; ++item) {
    const int64_t r = item / l.groups;
    const int64_t g = item % l.groups;
    const int64_t col = g * l.group_size;
    const int64_t n = std::min(l.group_size, l.row_len - col);
    const T* src = xp + r * row_stride + col;
    uint8_t* dst = cp + r * l.row_bytes + g * l.group_bytes;
    float* zero = SYM ? nullptr : zp + item;
#ifdef AIFLOW_AVX512
    if constexpr (!STOCH && kSimdLoads<T>) {
      const bool done =
          n % 16 == 0 && quantize_group_avx512<T, BITS, SYM>(src, n, dst, sp + item, zero);
      if (done) continue;
    }
#endif
    quantize_group<T, BITS, SYM, STOCH>(src, n, r * l.row_len + col, seed, dst, sp + item, zero,
                                        buf, staged);
  }
}

template <typename T, int BITS, bool SYM, bool STOCH>
void quantize_all(const at::Tensor& x, const Layout& l, uint32_t seed, at::Tensor& codes,
                  at::Tensor& scales, at::Tensor& zero_points) {
  const T* xp = x.data_ptr<T>();
  const int64_t row_stride = x.stride(0);
  uint8_t* cp = codes.data_ptr<uint8_t>();
  float* sp = scales.data_ptr<float>();
  float* zp = SYM ? nullptr : zero_points.data_ptr<float>();
  const int64_t grain = std::max<int64_t>(1, kWorkPerTask / l.group_size);
  at::parallel_for(0, l.rows * l.groups, grain, [&](int64_t begin, int64_t end) {
    quantize_items<T, BITS, SYM, STOCH>(xp, row_stride, l, seed, cp, sp, zp, begin, end);
  });
}

template <typename OUT, int BITS, bool SYM>
void dequantize_group(const uint8_t* src, int64_t n, float scale, float zero, OUT* dst) {
  constexpr int64_t per = 8 / BITS;
  constexpr int32_t mask = (1 << BITS) - 1;
  constexpr int32_t offset = SYM ? (1 << (BITS - 1)) : 0;
  const int64_t whole = n / per;
  for (int64_t j = 0; j < whole; ++j) {
    const int32_t byte = src[j];
    for (int64_t k = 0; k < per; ++k) {
      const float v = static_cast<float>(((byte >> (k * BITS)) & mask) - offset) * scale;
      dst[j * per + k] = static_cast<OUT>(SYM ? v : v + zero);
    }
  }
  for (int64_t i = whole * per; i < n; ++i) {
    const int32_t code = (src[whole] >> ((i - whole * per) * BITS)) & mask;
    const float v = static_cast<float>(code - offset) * scale;
    dst[i] = static_cast<OUT>(SYM ? v : v + zero);
  }
}

#ifdef AIFLOW_AVX512
// Outputs at least this large, in a buffer the caller gave, are written with streaming stores:
// they leave the cache anyway, and a plain store first reads each line it writes (64 MiB of int8
// codes -> float32: about 80% of a copy's bandwidth with plain stores, 116-156% streaming). Not
// into a fresh allocation: its pages fault in on first touch, zeroed in cache, and streaming
// stores past those lines made an allocating 64 MiB dequantize slower (27 ms against 18 ms).
constexpr int64_t kStreamBytes = int64_t{16} << 20;

// 16 codes (8 or 4 bits) as int32 lanes, code k of a byte in bits [k * BITS, (k + 1) * BITS).
template <int BITS>
inline __m512i load_codes16(const uint8_t* src) {
  if constexpr (BITS == 8) {
    return _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src)));
  } else {
    const __m128i bytes = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(src));
    const __m128i low = _mm_and_si128(bytes, _mm_set1_epi8(0x0F));
    const __m128i high = _mm_and_si128(_mm_srli_epi16(bytes, 4), _mm_set1_epi8(0x0F));
    return _mm512_cvtepu8_epi32(_mm_unpacklo_epi8(low, high));
  }
}

// dequantize_group<float, BITS, SYM> for n a multiple of 16 and dst 64-byte aligned, with
// streaming stores: the same float operations (convert, multiply, add), so the same values.
template <int BITS, bool SYM>
void dequantize_group_stream(const uint8_t* src, int64_t n, float scale, float zero, float* dst) {
  const __m512i offset = _mm512_set1_epi32(SYM ? (1 << (BITS - 1)) : 0);
  const __m512 step = _mm512_set1_ps(scale), shift = _mm512_set1_ps(zero);
  for (int64_t i = 0; i < n; i += 16) {
    const __m512i code = _mm512_sub_epi32(load_codes16<BITS>(src + i * BITS / 8), offset);
    const __m512 v = _mm512_mul_ps(_mm512_cvtepi32_ps(code), step);
    _mm512_stream_ps(dst + i, SYM ? v : _mm512_add_ps(v, shift));
  }
}
#endif

template <typename OUT, int BITS, bool SYM>
void dequantize_all(const at::Tensor& codes, const at::Tensor& scales,
                    const at::Tensor& zero_points, const Layout& l, at::Tensor& out,
                    bool may_stream) {
  const uint8_t* cp = codes.data_ptr<uint8_t>();
  const float* sp = scales.data_ptr<float>();
  const float* zp = SYM ? nullptr : zero_points.data_ptr<float>();
  OUT* op = out.data_ptr<OUT>();
  const int64_t grain = std::max<int64_t>(1, kWorkPerTask / l.group_size);
#ifdef AIFLOW_AVX512
  // Every group starts 64-byte aligned when the output does and rows and groups are whole
  // multiples of 16 values.
  const bool stream = may_stream && std::is_same_v<OUT, float> && BITS != 2 &&
                      out.nbytes() >= kStreamBytes && l.group_size % 16 == 0 &&
                      l.row_len % 16 == 0 && reinterpret_cast<uintptr_t>(op) % 64 == 0;
#else
  const bool stream = false;
#endif
  at::parallel_for(0, l.rows * l.groups, grain, [&](int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; ++item) {
      const int64_t r = item / l.groups;
      const int64_t g = item % l.groups;
      const int64_t col = g * l.group_size;
      const uint8_t* src = cp + r * l.row_bytes + g * l.group_bytes;
      const int64_t n = std::min(l.group_size, l.row_len - col);
      const float zero = SYM ? 0.0f : zp[item];
#ifdef AIFLOW_AVX512
      if constexpr (std::is_same_v<OUT, float> && BITS != 2) {
        if (stream) {
          dequantize_group_stream<BITS, SYM>(src, n, sp[item], zero, op + r * l.row_len + col);
          continue;
        }
      }
#endif
      dequantize_group<OUT, BITS, SYM>(src, n, sp[item], zero, op + r * l.row_len + col);
    }
#ifdef AIFLOW_AVX512
    if (stream) _mm_sfence();  // streaming stores are weakly ordered: publish them
#endif
  });
}

void check_bits(int64_t bits, int64_t group_size) {
  TORCH_CHECK(bits == 2 || bits == 4 || bits == 8, "bits must be 2, 4 or 8; got ", bits);
  TORCH_CHECK(group_size >= 1, "group_size must be >= 1; got ", group_size);
}

bool is_float_type(at::ScalarType t) {
  return t == at::kFloat || t == at::kHalf || t == at::kBFloat16;
}

// Calls fn(c10 type tag, bits constant, symmetric constant) for the runtime values.
template <typename Fn>
void with_bits_and_scheme(int64_t bits, bool symmetric, Fn&& fn) {
  auto with_scheme = [&](auto bits_constant) {
    if (symmetric) {
      fn(bits_constant, std::true_type{});
    } else {
      fn(bits_constant, std::false_type{});
    }
  };
  if (bits == 8) {
    with_scheme(std::integral_constant<int, 8>{});
  } else if (bits == 4) {
    with_scheme(std::integral_constant<int, 4>{});
  } else {
    with_scheme(std::integral_constant<int, 2>{});
  }
}

}  // namespace

namespace {

void check_quantize_args(const at::Tensor& x, int64_t bits, int64_t group_size, int64_t seed) {
  check_bits(bits, group_size);
  TORCH_CHECK(x.device().is_cpu(), "quantize_cpu: x must be a CPU tensor; got ", x.device());
  TORCH_CHECK(x.dim() == 2, "quantize_cpu: x must be 2-D (rows, row_len); got ", x.dim(), "-D");
  TORCH_CHECK(is_float_type(x.scalar_type()),
              "quantize_cpu: x must be float32, float16 or bfloat16; got ", x.scalar_type());
  TORCH_CHECK(x.size(1) <= 1 || x.stride(1) == 1, "quantize_cpu: x's last stride must be 1");
  TORCH_CHECK(x.size(0) <= 1 || x.stride(0) >= 0, "quantize_cpu: x's row stride must be >= 0");
  TORCH_CHECK(seed < (int64_t{1} << 32), "seed must be < 2**32; got ", seed);
}

void check_codes_args(const at::Tensor& codes, const at::Tensor& scales,
                      const at::Tensor& zero_points, const Layout& l, bool symmetric) {
  TORCH_CHECK(codes.device().is_cpu() && scales.device().is_cpu() && zero_points.device().is_cpu(),
              "codes, scales and zero_points must be CPU tensors");
  TORCH_CHECK(codes.scalar_type() == at::kByte && codes.is_contiguous() && codes.dim() == 2 &&
                  codes.size(0) == l.rows && codes.size(1) == l.row_bytes,
              "codes must be a contiguous uint8 tensor of shape (", l.rows, ", ", l.row_bytes, ")");
  TORCH_CHECK(scales.scalar_type() == at::kFloat && scales.is_contiguous() && scales.dim() == 2 &&
                  scales.size(0) == l.rows && scales.size(1) == l.groups,
              "scales must be a contiguous float32 tensor of shape (", l.rows, ", ", l.groups, ")");
  TORCH_CHECK(symmetric || (zero_points.scalar_type() == at::kFloat && zero_points.is_contiguous() &&
                            zero_points.sizes() == scales.sizes()),
              "zero_points must be a contiguous float32 tensor shaped like scales");
}

}  // namespace

void check_dequantize_args(const at::Tensor& codes, const at::Tensor& scales,
                           const at::Tensor& zero_points, int64_t bits, int64_t group_size,
                           int64_t row_len, bool symmetric) {
  check_bits(bits, group_size);
  TORCH_CHECK(row_len >= 0, "row_len must be >= 0; got ", row_len);
  TORCH_CHECK(codes.dim() == 2, "codes must be 2-D; got ", codes.dim(), "-D");
  check_codes_args(codes, scales, zero_points, layout_of(codes.size(0), row_len, bits, group_size),
                   symmetric);
}

void quantize_cpu_out(const at::Tensor& x, int64_t bits, int64_t group_size, bool symmetric,
                      int64_t seed, at::Tensor& codes, at::Tensor& scales,
                      at::Tensor& zero_points) {
  check_quantize_args(x, bits, group_size, seed);
  const Layout l = layout_of(x.size(0), x.size(1), bits, group_size);
  check_codes_args(codes, scales, zero_points, l, symmetric);
  if (l.rows == 0 || l.groups == 0) return;
  const uint32_t seed32 = seed < 0 ? 0u : static_cast<uint32_t>(seed);
  with_bits_and_scheme(bits, symmetric, [&](auto bits_c, auto sym_c) {
    constexpr int B = decltype(bits_c)::value;
    constexpr bool S = decltype(sym_c)::value;
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "quantize_cpu", [&] {
      if (seed < 0) {
        quantize_all<scalar_t, B, S, false>(x, l, seed32, codes, scales, zero_points);
      } else {
        quantize_all<scalar_t, B, S, true>(x, l, seed32, codes, scales, zero_points);
      }
    });
  });
}

void quantize_rows_f32(const float* x, int64_t rows, int64_t row_stride, int64_t row_len,
                       int64_t bits, int64_t group_size, bool symmetric, uint8_t* codes,
                       float* scales, float* zero_points) {
  check_bits(bits, group_size);
  TORCH_CHECK(rows >= 0 && row_len >= 0 && (rows <= 1 || row_stride >= row_len),
              "quantize_rows_f32: rows (", rows, ") and row_len (", row_len,
              ") must be >= 0 and row_stride (", row_stride, ") >= row_len");
  const Layout l = layout_of(rows, row_len, bits, group_size);
  if (l.rows == 0 || l.groups == 0) return;
  with_bits_and_scheme(bits, symmetric, [&](auto bits_c, auto sym_c) {
    constexpr int B = decltype(bits_c)::value;
    constexpr bool S = decltype(sym_c)::value;
    quantize_items<float, B, S, false>(x, row_stride, l, 0u, codes, scales, zero_points, 0,
                                       l.rows * l.groups);
  });
}

void dequantize_rows_f32(const uint8_t* codes, int64_t codes_row_stride, const float* scales,
                         int64_t scales_row_stride, const float* zero_points,
                         int64_t zero_points_row_stride, int64_t rows, int64_t row_len,
                         int64_t bits, int64_t group_size, bool symmetric, float* out,
                         int64_t out_row_stride) {
  check_bits(bits, group_size);
  const Layout l = layout_of(rows, row_len, bits, group_size);
  if (l.rows == 0 || l.groups == 0) return;
  with_bits_and_scheme(bits, symmetric, [&](auto bits_c, auto sym_c) {
    constexpr int B = decltype(bits_c)::value;
    constexpr bool S = decltype(sym_c)::value;
    for (int64_t r = 0; r < l.rows; ++r) {
      for (int64_t g = 0; g < l.groups; ++g) {
        const int64_t col = g * l.group_size;
        const float zero = S ? 0.0f : zero_points[r * zero_points_row_stride + g];
        dequantize_group<float, B, S>(codes + r * codes_row_stride + g * l.group_bytes,
                                      std::min(l.group_size, l.row_len - col),
                                      scales[r * scales_row_stride + g], zero,
                                      out + r * out_row_stride + col);
      }
    }
  });
}

std::vector<at::Tensor> quantize_cpu(const at::Tensor& x, int64_t bits, int64_t group_size,
                                     bool symmetric, int64_t seed) {
  check_quantize_args(x, bits, group_size, seed);
  const Layout l = layout_of(x.size(0), x.size(1), bits, group_size);
  auto codes = at::empty({l.rows, l.row_bytes}, x.options().dtype(at::kByte));
  auto scales = at::empty({l.rows, l.groups}, x.options().dtype(at::kFloat));
  auto zero_points = symmetric ? at::empty({0}, x.options().dtype(at::kFloat))
                               : at::empty({l.rows, l.groups}, x.options().dtype(at::kFloat));
  quantize_cpu_out(x, bits, group_size, symmetric, seed, codes, scales, zero_points);
  return {codes, scales, zero_points};
}

bool all_finite_cpu(const at::Tensor& values) {
  TORCH_CHECK(values.device().is_cpu() && values.scalar_type() == at::kFloat,
              "all_finite_cpu: values must be a float32 CPU tensor");
  const at::Tensor c = values.contiguous();
  const float* v = c.data_ptr<float>();
  bool finite = true;
  for (int64_t i = 0, n = c.numel(); i < n; ++i) finite &= std::isfinite(v[i]);
  return finite;
}

// A fresh output this large spends most of its first write faulting its pages in, one 4 KiB
// page at a time (64 MiB of float32: about 18 of 19 ms). Asking for transparent huge pages
// before that first touch cuts the faults 512-fold where the kernel allows them (madvise mode
// here: 19 -> 8 ms for a 64 MiB fill). Advisory: an error changes nothing, so it is ignored.
static constexpr int64_t kHugePageAdviceBytes = int64_t{16} << 20;

void advise_huge_pages(const at::Tensor& fresh) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  if (fresh.nbytes() < static_cast<size_t>(kHugePageAdviceBytes)) return;
  constexpr uintptr_t kHuge = uintptr_t{2} << 20;
  const auto begin = reinterpret_cast<uintptr_t>(fresh.data_ptr());
  const uintptr_t start = (begin + kHuge - 1) & ~(kHuge - 1);
  const uintptr_t end = (begin + fresh.nbytes()) & ~(kHuge - 1);
  if (end > start) madvise(reinterpret_cast<void*>(start), end - start, MADV_HUGEPAGE);
#endif
}

namespace {

void dequantize_into(const at::Tensor& codes, const at::Tensor& scales,
                     const at::Tensor& zero_points, int64_t bits, int64_t group_size,
                     int64_t row_len, bool symmetric, at::Tensor& out, bool may_stream) {
  check_dequantize_args(codes, scales, zero_points, bits, group_size, row_len, symmetric);
  const Layout l = layout_of(codes.size(0), row_len, bits, group_size);
  TORCH_CHECK(out.device().is_cpu() && is_float_type(out.scalar_type()) && out.is_contiguous() &&
                  out.dim() == 2 && out.size(0) == l.rows && out.size(1) == row_len,
              "out must be a contiguous float32/float16/bfloat16 CPU tensor of shape (", l.rows,
              ", ", row_len, ")");
  if (l.rows == 0 || l.groups == 0) return;
  with_bits_and_scheme(bits, symmetric, [&](auto bits_c, auto sym_c) {
    constexpr int B = decltype(bits_c)::value;
    constexpr bool S = decltype(sym_c)::value;
    AT_DISPATCH_FLOATING_TYPES_AND2(
        at::kHalf, at::kBFloat16, out.scalar_type(), "dequantize_cpu",
        [&] { dequantize_all<scalar_t, B, S>(codes, scales, zero_points, l, out, may_stream); });
  });
}

}  // namespace

void dequantize_cpu_out(const at::Tensor& codes, const at::Tensor& scales,
                        const at::Tensor& zero_points, int64_t bits, int64_t group_size,
                        int64_t row_len, bool symmetric, at::Tensor& out) {
  dequantize_into(codes, scales, zero_points, bits, group_size, row_len, symmetric, out, true);
}

at::Tensor dequantize_cpu(const at::Tensor& codes, const at::Tensor& scales,
                          const at::Tensor& zero_points, int64_t bits, int64_t group_size,
                          int64_t row_len, bool symmetric, at::ScalarType dtype) {
  TORCH_CHECK(is_float_type(dtype), "dtype must be float32, float16 or bfloat16; got ", dtype);
  TORCH_CHECK(codes.dim() == 2, "codes must be 2-D; got ", codes.dim(), "-D");
  TORCH_CHECK(row_len >= 0, "row_len must be >= 0; got ", row_len);
  auto out = at::empty({codes.size(0), row_len}, codes.options().dtype(dtype));
  advise_huge_pages(out);
  dequantize_into(codes, scales, zero_points, bits, group_size, row_len, symmetric, out, false);
  return out;
}
