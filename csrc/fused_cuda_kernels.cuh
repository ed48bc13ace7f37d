// CUDA kernel for skinny projections fused with group quantization: the device side of
// fused_cuda.cu for at most kFusedMaxWidth output features (a split point's encoder: 256 -> 32
// channels, 768 -> 96 tokens). One launch does all of quantize(x @ W^T + b): where the cuBLAS path
// costs a cuBLAS call plus a quantize launch per block of rows and a float32 tile through L2.
//
// A block of kFusedThreads threads (8 warps) owns BM = 8 * TM rows at a time (grid-stride over
// row blocks). The K loop stages kFusedK columns of x (converted to float32) and of the float32
// weight in shared memory, the next stage's loads in flight (in registers) while the current one
// is multiplied; warp w accumulates its TM rows (x broadcast from shared memory, 4 values of k a
// load) times the lane's columns lane + 32 j (j < ceil(width / 32)), one FMA per product in order
// of k, so each output is sum_k x[r, k] w[c, k] summed in order (then + bias): the codes equal the
// reference's up to that summation order (aiflow_comm/kernels/fused.py). The block then writes its
// rows' float32 projection into a shared-memory tile and quantizes it there with the team routine
// of quant_cuda_kernels.cuh (quantize_team_group): the float projection never leaves the SM.
//
// Like quant_cuda_kernels.cuh this header includes no torch, so it compiles on its own and in the
// host emulator (tests/cuda_compile_check.sh, EMULATE=1).
#pragma once

#include "quant_cuda_kernels.cuh"

#if defined(__CUDACC__)
#define QC_SHARED_ALIGN16 __shared__ __align__(16)
#else
#define QC_SHARED_ALIGN16 alignas(16) static
#endif

namespace qc {

constexpr int kFusedThreads = 256;                       // 8 warps
constexpr int kFusedWarps = kFusedThreads / kWarp;
constexpr int kFusedK = 32;                              // columns of x per stage
constexpr int kFusedColumns = 4;                         // output features per lane
constexpr int kFusedMaxWidth = kWarp * kFusedColumns;    // 128 output features at most
constexpr int kFusedMaxRows = kFusedWarps * 4;           // BM of the TM = 4 kernels

struct FusedParams {
  const void* x;           // element (0, 0) of the (rows, in_features) input
  int64_t x_row_stride;    // in elements, anything >= 0; the last stride is 1
  int64_t in_features;     // K >= 0
  const float* weight;     // (width, K) float32, rows contiguous, K floats apart
  const float* bias;       // (width,) float32, or null
  QuantParams q;           // the output: rows, row_len = width, layout, codes, scales, ...
  int team;                // quantize_team_size(q.group_size)
};

// Four consecutive floats of shared memory (16-byte aligned): one broadcast load on the device.
QC_DEV void load4(const float* p, float v[4]) {
#if defined(__CUDACC__)
  const float4 q = *reinterpret_cast<const float4*>(p);
  v[0] = q.x;
  v[1] = q.y;
  v[2] = q.z;
  v[3] = q.w;
#else
  for (int i = 0; i < 4; ++i) v[i] = p[i];
#endif
}

// The values this thread stages for columns [k0, k0 + kFusedK) (zeros past the edges): x[row0 +
// warp + 8 i, k0 + lane] for i < TM, weight[warp + 8 c, k0 + lane] for c < 4 * columns.
template <class Tag, int TM>
QC_DEV void load_stage(const FusedParams& f, int64_t row0, int64_t block_rows, int64_t k0,
                       int columns, int warp, int lane, float xr[TM], float wr[4 * kFusedColumns]) {
  const int64_t k = k0 + lane, in = f.in_features, width = f.q.row_len;
  const bool k_in = k < in;
  QC_UNROLL
  for (int i = 0; i < TM; ++i) {
    const int64_t r = warp + kFusedWarps * i;
    xr[i] = (k_in && r < block_rows)
                ? load_one<Tag>(static_cast<const char*>(f.x), (row0 + r) * f.x_row_stride + k)
                : 0.0f;
  }
  QC_UNROLL
  for (int c = 0; c < 4 * kFusedColumns; ++c) {
    const int64_t col = warp + kFusedWarps * c;
    wr[c] = (c < 4 * columns && k_in && col < width) ? f.weight[col * in + k] : 0.0f;
  }
}

// quantize(x @ W^T + b) for the rows of `f`, BM = 8 * TM rows per block and step.
template <class Tag, class M, int TM>
QC_KERNEL void QC_LAUNCH_BOUNDS(kFusedThreads) project_quantize_kernel(const FusedParams f) {
  constexpr int BM = kFusedWarps * TM;
  constexpr int VPT = 16 / TagF32::kSize;
  constexpr int CH = kValuesPerLane / VPT;
  // x rows of kFusedK + 4 floats: 16-byte aligned for load4, and a warp's stores of one row hit
  // 32 different banks; weight rows of an odd length: stores down a column, loads along a row,
  // both conflict-free.
  QC_SHARED_ALIGN16 float xs[BM][kFusedK + 4];
  QC_SHARED float ws[kFusedK][kFusedMaxWidth + 1];
  QC_SHARED float tile[BM * kFusedMaxWidth];
  const int tid = thread_idx(), lane = tid & (kWarp - 1), warp = tid / kWarp;
  const int64_t rows = f.q.rows, width = f.q.row_len, in = f.in_features;
  const int columns = static_cast<int>((width + kWarp - 1) / kWarp);  // per lane, <= 4
  const int team = f.team, team_lane = lane & (team - 1), team_in_warp = lane / team;
  const int teams_per_warp = kWarp / team;

  for (int64_t row0 = static_cast<int64_t>(block_idx()) * BM; row0 < rows;
       row0 += static_cast<int64_t>(grid_dim()) * BM) {
    const int64_t block_rows = rows - row0 < BM ? rows - row0 : BM;
    float acc[TM][kFusedColumns];
    QC_UNROLL
    for (int i = 0; i < TM; ++i) {
      QC_UNROLL
      for (int j = 0; j < kFusedColumns; ++j) acc[i][j] = 0.0f;
    }
    float xr[TM], wr[4 * kFusedColumns];
    load_stage<Tag, TM>(f, row0, block_rows, 0, columns, warp, lane, xr, wr);
    for (int64_t k0 = 0; k0 < in; k0 += kFusedK) {
      QC_UNROLL
      for (int i = 0; i < TM; ++i) xs[warp + kFusedWarps * i][lane] = xr[i];
      QC_UNROLL
      for (int c = 0; c < 4 * kFusedColumns; ++c) {
        if (c < 4 * columns) ws[lane][warp + kFusedWarps * c] = wr[c];
      }
      sync_block();
      if (k0 + kFusedK < in) {  // the next stage's loads, in flight during the products
        load_stage<Tag, TM>(f, row0, block_rows, k0 + kFusedK, columns, warp, lane, xr, wr);
      }
      for (int kk = 0; kk < kFusedK; kk += 4) {
        float xv[TM][4];
        QC_UNROLL
        for (int i = 0; i < TM; ++i) load4(&xs[warp * TM + i][kk], xv[i]);
        QC_UNROLL
        for (int u = 0; u < 4; ++u) {
          QC_UNROLL
          for (int j = 0; j < kFusedColumns; ++j) {
            if (j < columns) {
              const float w = ws[kk + u][lane + kWarp * j];
              QC_UNROLL
              for (int i = 0; i < TM; ++i) acc[i][j] = f_fma(xv[i][u], w, acc[i][j]);
            }
          }
        }
      }
      sync_block();
    }
    QC_UNROLL
    for (int i = 0; i < TM; ++i) {
      QC_UNROLL
      for (int j = 0; j < kFusedColumns; ++j) {
        const int64_t c = lane + kWarp * j;
        if (c < width) {
          const float y = acc[i][j];
          tile[(warp * TM + i) * width + c] = f.bias != nullptr ? f_add(y, f.bias[c]) : y;
        }
      }
    }
    sync_block();

    // The block's rows, quantized from the tile: its groups shared out among teams.
    QuantParams p = f.q;
    p.x = tile;
    p.x_row_stride = width;
    p.rows = block_rows;
    p.codes += row0 * p.codes_row_stride;
    p.scales += row0 * p.scales_row_stride;
    if (!M::kSym) p.zero_points += row0 * p.zero_points_row_stride;
    const int64_t total = block_rows * p.num_groups;
    // `base < total` is the same for every lane of the warp: all lanes reach every shuffle.
    for (int64_t base = static_cast<int64_t>(warp) * teams_per_warp; base < total;
         base += static_cast<int64_t>(kFusedWarps) * teams_per_warp) {
      int64_t r, g, n;
      locate_group(p, base + team_in_warp, total, r, g, n);
      uint32_t raw[CH][4];
      load_team_chunks<TagF32, VPT, CH>(p, r, g, n, team, team_lane, raw);
      quantize_team_group<TagF32, M, VPT, CH>(p, r, g, n, team, team_lane, raw);
    }
    sync_block();  // the tile is read before the next row block writes it
  }
}

using FusedKernel = void (*)(const FusedParams);

template <class Tag, int BITS, bool SYM>
inline FusedKernel fused_kernel_for_rows(int tm) {
  using M = Mode<BITS, SYM, false>;
  return tm == 1 ? project_quantize_kernel<Tag, M, 1> : project_quantize_kernel<Tag, M, 4>;
}

// The kernel for x of element type Tag, `bits` and `symmetric`, with TM = tm (1 or 4) rows a warp.
template <class Tag>
inline FusedKernel fused_kernel_for(int bits, bool symmetric, int tm) {
  switch (bits) {
    case 2: return symmetric ? fused_kernel_for_rows<Tag, 2, true>(tm) : fused_kernel_for_rows<Tag, 2, false>(tm);
    case 4: return symmetric ? fused_kernel_for_rows<Tag, 4, true>(tm) : fused_kernel_for_rows<Tag, 4, false>(tm);
    default: return symmetric ? fused_kernel_for_rows<Tag, 8, true>(tm) : fused_kernel_for_rows<Tag, 8, false>(tm);
  }
}

}  // namespace qc
