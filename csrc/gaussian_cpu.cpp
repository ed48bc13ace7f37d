// Counter-based standard normal noise on the CPU. aiflow_comm/channel/noise.py is the
// specification; this kernel reproduces it bit for bit: the same float32 operations in the same
// order (the build turns FMA contraction off), constants rounded from the same doubles.
#include <ATen/Parallel.h>
#include <torch/extension.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "quant.h"
#include "stochastic_noise.h"

namespace {

constexpr float kLn2 = static_cast<float>(0.6931471805599453);
constexpr float kSqrt2 = static_cast<float>(1.4142135623730951);
constexpr float kInvSqrt2 = static_cast<float>(1.0 / 1.4142135623730951);
constexpr float kHalfPi = static_cast<float>(3.141592653589793 / 2.0);
constexpr float kLog[4] = {static_cast<float>(1.0 / 3), static_cast<float>(1.0 / 5),
                           static_cast<float>(1.0 / 7), static_cast<float>(1.0 / 9)};
constexpr float kSin[4] = {static_cast<float>(-1.0 / 6), static_cast<float>(1.0 / 120),
                           static_cast<float>(-1.0 / 5040), static_cast<float>(1.0 / 362880)};
constexpr float kCos[4] = {static_cast<float>(-1.0 / 2), static_cast<float>(1.0 / 24),
                           static_cast<float>(-1.0 / 720), static_cast<float>(1.0 / 40320)};

// Word `index` of the draw: H(H(lo ^ key) ^ outer), lo the index's low half, key = H(hi ^ seed)
// for its high half and outer = H(key ^ golden) (noise.py: the seed keys the hash inside and
// outside, so that draws are not permutations of one sequence). Both keys are constant over
// 2**32 words: the caller computes them once per such run, and the loop stays vectorizable.
inline uint32_t draw_word(uint32_t lo, uint32_t key, uint32_t outer) {
  return aiflow_noise::hash32(aiflow_noise::hash32(lo ^ key) ^ outer);
}

inline uint32_t outer_key(uint32_t key) { return aiflow_noise::hash32(key ^ 0x9E3779B9u); }

inline float horner(float t, const float* c) {  // 1 + t (c0 + t (c1 + t (c2 + t c3)))
  float acc = c[3];
  acc = acc * t + c[2];
  acc = acc * t + c[1];
  acc = acc * t + c[0];
  return acc * t + 1.0f;
}

inline float log_unit(float u) {  // log u for u in (0, 1]
  uint32_t bits;
  std::memcpy(&bits, &u, sizeof bits);
  int32_t exponent = static_cast<int32_t>(bits >> 23) - 127;
  const uint32_t mantissa_bits = (bits & 0x7FFFFFu) | 0x3F800000u;
  float mantissa;
  std::memcpy(&mantissa, &mantissa_bits, sizeof mantissa);
  const bool big = mantissa > kSqrt2;
  mantissa = big ? mantissa * 0.5f : mantissa;
  exponent += big ? 1 : 0;
  const float s = (mantissa - 1.0f) / (mantissa + 1.0f);
  const float s2 = s * s;
  float series = kLog[3];
  series = series * s2 + kLog[2];
  series = series * s2 + kLog[1];
  series = series * s2 + kLog[0];
  series = series * s2;
  return static_cast<float>(exponent) * kLn2 + (2.0f * s + (2.0f * s) * series);
}

// Values 2p and 2p + 1 of the draw: r cos(theta), r sin(theta).
inline void normal_pair(int64_t p, uint32_t key, uint32_t outer, float& x_out, float& y_out) {
  const uint32_t lo = static_cast<uint32_t>(static_cast<uint64_t>(p) * 2);  // even: lo + 1 fits
  const uint32_t a = draw_word(lo, key, outer), b = draw_word(lo + 1, key, outer);
  const float u = (static_cast<float>(a) + 1.0f) * 0x1p-32f;
  const float radius = std::sqrt(log_unit(u) * -2.0f);
  const uint32_t quadrant = b >> 30;
  const float psi = (static_cast<float>(b & 0x3FFFFFFFu) * 0x1p-30f - 0.5f) * kHalfPi;
  const float t = psi * psi;
  const float sin_psi = psi * horner(t, kSin), cos_psi = horner(t, kCos);
  const float c = (cos_psi - sin_psi) * kInvSqrt2, s = (cos_psi + sin_psi) * kInvSqrt2;
  const float x = quadrant == 0 ? c : quadrant == 1 ? -s : quadrant == 2 ? -c : s;
  const float y = quadrant == 0 ? s : quadrant == 1 ? c : quadrant == 2 ? -s : -c;
  x_out = radius * x;
  y_out = radius * y;
}

}  // namespace

void counter_normal_cpu(at::Tensor& out, int64_t seed) {
  TORCH_CHECK(out.device().is_cpu(), "out must be a CPU tensor; got ", out.device());
  TORCH_CHECK(out.scalar_type() == at::kFloat, "out must be float32; got ", out.scalar_type());
  TORCH_CHECK(out.is_contiguous(), "out must be contiguous");
  TORCH_CHECK(seed >= 0 && seed < (int64_t{1} << 32), "seed must be in [0, 2**32); got ", seed);
  const int64_t n = out.numel(), whole = n / 2;
  float* dst = out.data_ptr<float>();
  const uint32_t seed32 = static_cast<uint32_t>(seed);
  at::parallel_for(0, whole, 8192, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end;) {  // runs of pairs whose words share the high half
      const uint64_t hi = (static_cast<uint64_t>(p) * 2) >> 32;
      const int64_t stop = std::min<int64_t>(end, static_cast<int64_t>(((hi + 1) << 32) / 2));
      const uint32_t key = aiflow_noise::hash32(static_cast<uint32_t>(hi) ^ seed32);
      const uint32_t outer = outer_key(key);
      for (; p < stop; ++p) normal_pair(p, key, outer, dst[2 * p], dst[2 * p + 1]);
    }
  });
  if (n % 2) {
    const uint64_t hi = (static_cast<uint64_t>(whole) * 2) >> 32;
    const uint32_t key = aiflow_noise::hash32(static_cast<uint32_t>(hi) ^ seed32);
    float unused;
    normal_pair(whole, key, outer_key(key), dst[n - 1], unused);
  }
}
