// CPU group quantization: quantize+pack and unpack+dequantize, parallel over groups with
// at::parallel_for (OpenMP), inner loops written as plain lane-wise loops the compiler vectorizes.
// Bit-exact with aiflow_comm/kernels/reference.py: IEEE float32 division, round half to even,
// no fused multiply-add (built with -ffp-contract=off, never with -ffast-math).
#include "quant.h"
#include "stochastic_noise.h"

#include <ATen/Parallel.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

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

// Clamp that sends NaN to `lo`; the forms map onto the SIMD max/min instructions.
inline float clamp_to(float v, float lo, float hi) {
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

template <typename T, int BITS, bool SYM, bool STOCH>
void quantize_group(const T* src, int64_t n, int64_t first_index, uint32_t seed, uint8_t* dst,
                    float* scale_out, float* zero_out, float* buf, uint8_t* codes) {
  int32_t low_key = kPosInfKey + 1, high_key = SYM ? 0 : kNegInfKey - 1;
  const float* v = nullptr;
  for (int64_t start = 0; start < n; start += kChunk) {
    const int64_t len = std::min(kChunk, n - start);
    v = floats_of(src, start, len, buf);
    accumulate<SYM>(v, len, low_key, high_key);
  }
  // NaN or Inf anywhere in the group: a key at or beyond an infinity's.
  const bool finite = SYM ? high_key < kPosInfKey : high_key < kPosInfKey && low_key > kNegInfKey;
  const float high = float_of_key(high_key);  // symmetric: |x|'s bits are its key
  const float low = float_of_key(low_key);
  constexpr float qmax = static_cast<float>((1 << (BITS - 1)) - 1);
  constexpr float levels = static_cast<float>((1 << BITS) - 1);
  const float scale = SYM ? high / qmax : (high - low) / levels;
  const float safe = scale > 0.0f ? scale : 1.0f;
  const float shift = SYM ? 0.0f : low;
  const float code_lo = SYM ? -qmax : 0.0f;
  const float code_hi = SYM ? qmax : levels;
  // Adding M + offset to an integer-valued float in [lo, hi] leaves code = q + offset in the low
  // bits; adding it to a clamped non-integer rounds half to even (M and offset are even).
  constexpr float kBias = kRoundMagic + (SYM ? static_cast<float>(1 << (BITS - 1)) : 0.0f);
  constexpr uint32_t kCodeMask = (1u << BITS) - 1u;
  *scale_out = finite ? scale : std::numeric_limits<float>::quiet_NaN();
  if (!SYM) *zero_out = low;

  for (int64_t start = 0; start < n; start += kChunk) {
    const int64_t len = std::min(kChunk, n - start);
    if (n > kChunk) v = floats_of(src, start, len, buf);
    uint8_t* out = BITS == 8 ? dst + start : codes;
    for (int64_t i = 0; i < len; ++i) {
      float q = SYM ? v[i] / safe : (v[i] - shift) / safe;
      if (STOCH) q = round_down(q + aiflow_noise::uniform(seed, first_index + start + i));
      out[i] = static_cast<uint8_t>(low_bits(clamp_to(q, code_lo, code_hi) + kBias) & kCodeMask);
    }
    if (BITS != 8) pack<BITS>(codes, len, dst + start * BITS / 8);
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
    float buf[kChunk];
    uint8_t staged[kChunk];
    for (int64_t item = begin; item < end; ++item) {
      const int64_t r = item / l.groups;
      const int64_t g = item % l.groups;
      const int64_t col = g * l.group_size;
      const int64_t n = std::min(l.group_size, l.row_len - col);
      quantize_group<T, BITS, SYM, STOCH>(xp + r * row_stride + col, n, r * l.row_len + col, seed,
                                          cp + r * l.row_bytes + g * l.group_bytes, sp + item,
                                          SYM ? nullptr : zp + item, buf, staged);
    }
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

template <typename OUT, int BITS, bool SYM>
void dequantize_all(const at::Tensor& codes, const at::Tensor& scales,
                    const at::Tensor& zero_points, const Layout& l, at::Tensor& out) {
  const uint8_t* cp = codes.data_ptr<uint8_t>();
  const float* sp = scales.data_ptr<float>();
  const float* zp = SYM ? nullptr : zero_points.data_ptr<float>();
  OUT* op = out.data_ptr<OUT>();
  const int64_t grain = std::max<int64_t>(1, kWorkPerTask / l.group_size);
  at::parallel_for(0, l.rows * l.groups, grain, [&](int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; ++item) {
      const int64_t r = item / l.groups;
      const int64_t g = item % l.groups;
      const int64_t col = g * l.group_size;
      dequantize_group<OUT, BITS, SYM>(cp + r * l.row_bytes + g * l.group_bytes,
                                       std::min(l.group_size, l.row_len - col), sp[item],
                                       SYM ? 0.0f : zp[item], op + r * l.row_len + col);
    }
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

void dequantize_cpu_out(const at::Tensor& codes, const at::Tensor& scales,
                        const at::Tensor& zero_points, int64_t bits, int64_t group_size,
                        int64_t row_len, bool symmetric, at::Tensor& out) {
  check_bits(bits, group_size);
  TORCH_CHECK(row_len >= 0, "row_len must be >= 0; got ", row_len);
  TORCH_CHECK(codes.dim() == 2, "codes must be 2-D; got ", codes.dim(), "-D");
  const Layout l = layout_of(codes.size(0), row_len, bits, group_size);
  check_codes_args(codes, scales, zero_points, l, symmetric);
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
        [&] { dequantize_all<scalar_t, B, S>(codes, scales, zero_points, l, out); });
  });
}

at::Tensor dequantize_cpu(const at::Tensor& codes, const at::Tensor& scales,
                          const at::Tensor& zero_points, int64_t bits, int64_t group_size,
                          int64_t row_len, bool symmetric, at::ScalarType dtype) {
  TORCH_CHECK(is_float_type(dtype), "dtype must be float32, float16 or bfloat16; got ", dtype);
  TORCH_CHECK(codes.dim() == 2, "codes must be 2-D; got ", codes.dim(), "-D");
  TORCH_CHECK(row_len >= 0, "row_len must be >= 0; got ", row_len);
  auto out = at::empty({codes.size(0), row_len}, codes.options().dtype(dtype));
  dequantize_cpu_out(codes, scales, zero_points, bits, group_size, row_len, symmetric, out);
  return out;
}
