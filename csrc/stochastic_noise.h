// The counter-based noise of stochastic rounding, shared by the C++ and CUDA kernels (and the
// host emulation of the CUDA ones): aiflow_comm/kernels/reference.py's _hash32 and uniform_noise.
// No torch include, so the torch-free CUDA kernel header can use it.
#pragma once

#include <stdint.h>

#if defined(__CUDACC__)
#define AIFLOW_NOISE_FN __host__ __device__ __forceinline__
#else
#define AIFLOW_NOISE_FN inline
#endif

namespace aiflow_noise {

// The 'lowbias32' integer hash (the multiplies wrap around).
AIFLOW_NOISE_FN uint32_t hash32(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7FEB352Du;
  x ^= x >> 15;
  x *= 0x846CA68Bu;
  x ^= x >> 16;
  return x;
}

// u = (h >> 8) * 2^-24 in [0, 1), h = hash32(lo ^ hash32(hi ^ seed)) for the index's 32-bit halves.
// Both factors are exact in float32 and their product is a power-of-two scaling: exact too.
AIFLOW_NOISE_FN float uniform(uint32_t seed, int64_t index) {
  const uint64_t u = static_cast<uint64_t>(index);
  const uint32_t high = hash32(static_cast<uint32_t>(u >> 32) ^ seed);
  const uint32_t h = hash32(static_cast<uint32_t>(u) ^ high);
  return static_cast<float>(h >> 8) * 5.9604644775390625e-08f;
}

}  // namespace aiflow_noise

#undef AIFLOW_NOISE_FN
