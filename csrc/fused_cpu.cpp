// CPU projection fused with group quantization: project_quantize (quantize(x @ W^T + b)) and
// dequantize_project (dequantize(codes) @ W^T + b), tile by tile so that the float projection
// (or the decoded tensor) never exists in memory as a whole.
//
// Skinny projections (a split point's encoder, e.g. 256 -> 32 channels: at most kSkinnyMaxOut
// output features and a packed weight that stays in L2, see skinny_fits) run an AVX-512
// register-blocked kernel when the build has AVX-512. Each task packs the weight into an
// (in, out padded to 16) panel (a float32 weight stored transposed, weight.T contiguous, with
// whole vectors of outputs, is such a panel: read in place), takes chunks of rows from a counter
// shared with the other tasks (row_queue.h), projects each chunk's blocks of rows into a
// tile of ~16 KiB with strips of R rows x V vectors of accumulators (x[r, k] broadcast, FMA with
// the panel's row k), and quantizes the tile with quant_cpu.cpp's own routine
// (quantize_rows_f32) while it is in L1: the float projection never leaves L1, and x is read
// once. float16/bfloat16 x is converted a strip of rows at a time. Fewer than kDotMaxRows rows
// skip the pack: the kernel's dot-product form (dot_strips.h) reads the weight's rows as they
// lie, the threads splitting the output features, and the calling thread quantizes the rows'
// tile (at most 32 KiB). The sums run in an order other than BLAS's (over k in order with FMAs,
// or in 16 lanes then a tree; the bias added last), so a few codes may differ from the
// reference's by one step.
//
// dequantize_project with a float32 output and a packed weight that fits L2 (any number of
// outputs) runs the same kernel: each task decodes blocks of its rows into a buffer and multiplies
// them by its panel straight into the output (dequantize_project_skinny).
//
// Other shapes (and builds without AVX-512) process row blocks in turn: multi-threaded BLAS
// writes a block's float32 tile into one reused buffer of about 1 MiB, which is still in cache
// when quantize_cpu_out (quant_cpu.cpp, the bit-exact group quantizer, parallel over groups)
// reads it. The BLAS is MKL's packed GEMM on a weight packed once (packed_gemm.h; from the
// weight as it lies when its rows or columns are contiguous) where torch links MKL, else
// at::addmm per block. Measured on a 2-core AVX-512 CPU, this beat one task per thread with
// single-threaded tile matmuls (1.7x slower on 4096 x 4096 -> 512).
// Codes equal the reference's up to the summation order of the tile's matmul (see
// aiflow_comm/kernels/fused.py).
#include "packed_gemm.h"
#include "quant.h"
#include "row_queue.h"

#include <ATen/Parallel.h>
#include <c10/core/GradMode.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <optional>
#include <type_traits>
#include <vector>

// The condition quant_cpu.cpp enables its AVX-512 path under (the same build flags reach both).
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
#include <immintrin.h>
#define AIFLOW_AVX512 1
#include "dot_strips.h"
#endif

namespace {

constexpr int64_t kTileFloats = int64_t{1} << 18;  // 1 MiB of float32 per tile, about
constexpr int64_t kMinBlockRows = 64;                 // fewer rows make the matmul inefficient
// MKL's packed compute slows on fewer rows (4096 x 4096 -> 512 in blocks of 128 rows: 1.03x one
// matmul; 256: 0.99x; 512: 0.93x).
constexpr int64_t kMinPackedRows = 256;

// Rows per block for at::addmm: a tile of about kTileFloats values of `width` columns, or more
// when the matmul is long (`depth` products a value): BLAS packs the whole weight for every call,
// which a block of depth / 2 rows amortizes (4096 x 4096 -> 512: 8 blocks of 512 rows cost
// 1.05-1.10x one matmul, 2 blocks about 1.0x). Never more than half the rows, so the whole
// projection is never held at once.
int64_t block_rows(int64_t rows, int64_t width, int64_t depth) {
  const int64_t by_cache = std::max(kTileFloats / std::max<int64_t>(width, 1), kMinBlockRows);
  const int64_t by_depth = std::min(depth / 2, (rows + 1) / 2);
  return std::max<int64_t>(1, std::min(std::max(by_cache, by_depth), rows));
}

// Rows per block for a PackedWeight (packed once, so blocks stay cache-sized): a tile of about
// kTileFloats values of `width` columns, at least kMinPackedRows.
int64_t packed_block_rows(int64_t rows, int64_t width) {
  return std::min(rows, std::max(kTileFloats / std::max<int64_t>(width, 1), kMinPackedRows));
}

// Rows per block and the weight to multiply them by (see project_tile): packed once when MKL's
// packed GEMM is there, the rows make two blocks or more and x's rows (in_stride floats apart)
// do not overlap, in blocks of packed_block_rows(rows, tile_width); else addmm_block rows.
struct BlockPlan {
  int64_t block;
  std::optional<PackedWeight> packed;
};

BlockPlan plan_blocks(int64_t rows, const at::Tensor& weight, int64_t tile_width,
                      int64_t addmm_block, int64_t in_stride) {
  const int64_t in = weight.size(1), width = weight.size(0);
  const int64_t block = packed_block_rows(rows, tile_width);
  BlockPlan plan{addmm_block, std::nullopt};
  if (block < rows && in_stride >= in && PackedWeight::available(block, in, width, in_stride)) {
    plan.block = block;
    plan.packed.emplace(PackedWeight::packs_in_place(weight) ? weight : weight.contiguous(),
                        block);
  }
  return plan;
}

bool is_float_type(at::ScalarType t) {
  return t == at::kFloat || t == at::kHalf || t == at::kBFloat16;
}

// The float32 (out, in) weight and (out,) bias (undefined when absent), checked against `in`.
void check_projection(const char* op, const at::Tensor& weight,
                      const c10::optional<at::Tensor>& bias, int64_t in_features) {
  TORCH_CHECK(weight.device().is_cpu() && weight.dim() == 2 && is_float_type(weight.scalar_type()),
              op, ": weight must be a 2-D float32/float16/bfloat16 CPU tensor (out, in)");
  TORCH_CHECK(weight.size(1) == in_features, op, ": weight has ", weight.size(1),
              " input features; x has ", in_features);
  if (bias.has_value() && bias->defined()) {
    TORCH_CHECK(bias->device().is_cpu() && bias->dim() == 1 && bias->size(0) == weight.size(0) &&
                    is_float_type(bias->scalar_type()),
                op, ": bias must be a float CPU tensor of shape (", weight.size(0), ",)");
  }
}

// out_tile = in_tile @ weight^T (+ bias), float32, out_tile's rows contiguous: by the packed
// weight when there is one (in_tile's rows in_stride floats apart), else by at::addmm.
void project_tile(const at::Tensor& in_tile, int64_t in_stride,
                  const std::optional<PackedWeight>& packed, const at::Tensor& weight,
                  const at::Tensor& bias, at::Tensor& out_tile) {
  if (!packed) {
    if (bias.defined()) {
      at::addmm_out(out_tile, bias, in_tile, weight.t());
    } else {
      at::mm_out(out_tile, in_tile, weight.t());
    }
    return;
  }
  const int64_t n = out_tile.size(0), width = out_tile.size(1);
  if (bias.defined()) out_tile.copy_(bias.expand({n, width}));
  packed->multiply(in_tile.data_ptr<float>(), in_stride, n, bias.defined() ? 1.0f : 0.0f,
                   out_tile.data_ptr<float>(), width);
}

#ifdef AIFLOW_AVX512
// ---- The skinny kernel ------------------------------------------------------------------------
// Thresholds measured on a 2-core Sapphire Rapids (48 KiB L1d, 2 MiB L2 a core), 4096 rows, the
// kernel against the addmm + quantize path below: it wins up to 256 output features while the
// panel fits 512 KiB (e.g. 0.90x vs 1.13x of the matmul alone at 1024 -> 128), and up to 1 MiB
// with a single column chunk (4096 -> 64: 0.70x vs 1.00x); a 1 MiB panel in several chunks is
// even (2048 -> 128), a 2 MiB one streams from L3 every strip and loses 2x (4096 -> 128).
constexpr int64_t kLanes = 16;                                 // floats per AVX-512 register
constexpr int64_t kSkinnyMaxOut = 256;                         // output features: 16 vectors
constexpr int64_t kSkinnyMaxPanelBytes = int64_t{512} << 10;   // the packed weight, in L2
constexpr int64_t kSkinnyMaxPanelBytesOneChunk = int64_t{1} << 20;  // out <= 64
// Below this many rows the pack (~9 rows' worth of FMAs) outweighs BLAS's gemv on a big panel
// (1 x 768 -> 96: 17 us vs 14 us); a small panel is cheap to pack (1 x 256 -> 32: 4 us vs 10 us).
constexpr int64_t kSkinnyMinRows = 8;
constexpr int64_t kSkinnySmallPanelBytes = int64_t{64} << 10;
// Below this many rows the dot-product form (dot_strips.h, which reads the weight as it lies)
// beats both, up to a weight of kDotMaxWeightBytes (2 threads, fused time over the packed
// kernel's or BLAS's: 768 -> 96 at 1, 8, 16, 24 rows: 0.4, 0.6, 0.85, 0.85; 4096 -> 64:
// 0.75, 0.4, 0.65, 0.85; even at 32 to 40 rows). Each strip of 8 rows streams the whole weight,
// which past 1 MiB comes from L3 (16384 -> 32 at 8 rows: 1.15).
constexpr int64_t kDotMaxRows = 32;
constexpr int64_t kDotMaxWeightBytes = int64_t{1} << 20;
constexpr int64_t kStripLcm = 24;             // every strip height divides it
constexpr int64_t kSkinnyTileFloats = 4096;   // a block's tile: 16 KiB, in L1 beside x's rows
// The tile buffer: a block is at least kStripLcm rows, so a wide one may exceed 16 KiB.
constexpr int64_t kSkinnyTileCapacity = std::max(kSkinnyTileFloats, kStripLcm * kSkinnyMaxOut);
constexpr int64_t kMinTaskFmas = int64_t{1} << 18;  // work per parallel task, at least
// Rows: chunks handed to the tasks (row_queue.h) are multiples of this, but for the last, so
// that the tasks end together (197 rows in whole blocks of 24 would leave one of 2 threads 5
// blocks and the other 4). Against even shares of the rows (at::parallel_for), 2 threads, 20 s
// of calls taking turns with addmm, median (90th percentile) of the ratio to addmm:
// 197 x 768 -> 96: 0.89 (0.99) against 0.96 (1.10); 100352 x 256 -> 32: 0.76 (0.92) against
// 0.92 (1.00); 40 x 768 -> 96: 0.97 (1.08) against 1.03 (1.09).
constexpr int64_t kChunkStep = 4;
// A chunk's rows of the wider side (x, or dequantize_project's output), at most: one contiguous
// stream (on 100352 x 32 -> 256, chunks of 192 KiB cost 10-20% over 768 KiB).
constexpr int64_t kChunkBytes = int64_t{1} << 20;

// Rows a chunk, at most: whole blocks of `block` rows, about kChunkBytes of `row_floats` a row.
int64_t chunk_rows(int64_t row_floats, int64_t block) {
  const int64_t row_bytes = std::max<int64_t>(row_floats, 1) * int64_t{sizeof(float)};
  return std::max<int64_t>(1, kChunkBytes / row_bytes / block) * block;
}

int64_t padded_width(int64_t width) { return (width + kLanes - 1) / kLanes * kLanes; }

// Rows that make a parallel task's worth of kMinTaskFmas at in x padded products a row.
int64_t min_task_rows(int64_t in, int64_t padded) {
  return std::max<int64_t>(1, kMinTaskFmas / (std::max<int64_t>(in, 1) * padded));
}

// Rows per block: a multiple of every strip height filling about kSkinnyTileFloats.
int64_t skinny_block_rows(int64_t padded) {
  return std::max(kStripLcm, kSkinnyTileFloats / padded / kStripLcm * kStripLcm);
}

// Strip height for V vectors of columns: R x V accumulators plus V weight registers and a
// broadcast fit the 32 zmm registers, and the 2 FMA ports get >= 8 independent chains.
template <int V>
constexpr int kStripRows = V <= 2 ? 12 : (V == 3 ? 8 : 6);

// out[r, 0:16V) = sum_k x[r, k] * panel[k, 0:16V) (+ bias) for R rows; panel, bias and out are
// 64-byte aligned with strides a multiple of 16 floats.
// Prefetches the `ahead` rows that follow the strip (rows R .. R + ahead of x) into L2, a cache
// line of each every 16 values of k: the hardware prefetcher follows R interleaved row streams
// poorly, and x streams from memory (100352 x 256 -> 32: 0.78x of the matmul alone with, 1.11x
// without; into L1 instead of L2: 0.79x).
template <int R, int V>
inline void project_strip(const float* x, int64_t x_stride, int64_t in, const float* panel,
                          int64_t panel_stride, const float* bias, float* out, int64_t out_stride,
                          int64_t ahead) {
  __m512 acc[R][V];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 4
    for (int v = 0; v < V; ++v) acc[r][v] = _mm512_setzero_ps();
  }
  for (int64_t k0 = 0; k0 < in; k0 += kLanes) {
    for (int64_t i = 0; i < ahead; ++i) {
      _mm_prefetch(reinterpret_cast<const char*>(x + (R + i) * x_stride + k0), _MM_HINT_T1);
    }
    const int64_t k1 = std::min(in, k0 + kLanes);
    for (int64_t k = k0; k < k1; ++k) {
      const float* w = panel + k * panel_stride;
      __m512 wv[V];
#pragma GCC unroll 4
      for (int v = 0; v < V; ++v) wv[v] = _mm512_loadu_ps(w + v * kLanes);
#pragma GCC unroll 16
      for (int r = 0; r < R; ++r) {
        const __m512 xr = _mm512_set1_ps(x[r * x_stride + k]);
#pragma GCC unroll 4
        for (int v = 0; v < V; ++v) acc[r][v] = _mm512_fmadd_ps(xr, wv[v], acc[r][v]);
      }
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 4
    for (int v = 0; v < V; ++v) {
      const __m512 y = bias ? _mm512_add_ps(acc[r][v], _mm512_load_ps(bias + v * kLanes))
                            : acc[r][v];
      _mm512_store_ps(out + r * out_stride + v * kLanes, y);
    }
  }
}

// project_strip over n rows: full strips, then 8, 4, 2 and 1 rows as the remainder's bits say.
// x holds `valid` >= n rows: the strips prefetch the rows that follow them, up to there.
template <int V>
void project_rows(const float* x, int64_t x_stride, int64_t n, int64_t valid, int64_t in,
                  const float* panel, int64_t panel_stride, const float* bias, float* out,
                  int64_t out_stride) {
  constexpr int R = kStripRows<V>;
  int64_t r = 0;
  for (; r + R <= n; r += R) {
    const int64_t ahead = std::clamp<int64_t>(valid - r - R, 0, R);
    project_strip<R, V>(x + r * x_stride, x_stride, in, panel, panel_stride, bias,
                        out + r * out_stride, out_stride, ahead);
  }
  const int64_t tail = n - r;
  auto run = [&](auto rows_c) {
    constexpr int T = decltype(rows_c)::value;
    project_strip<T, V>(x + r * x_stride, x_stride, in, panel, panel_stride, bias,
                        out + r * out_stride, out_stride, 0);
    r += T;
  };
  if constexpr (R > 8) {
    if (tail & 8) run(std::integral_constant<int, 8>{});
  }
  if (tail & 4) run(std::integral_constant<int, 4>{});
  if (tail & 2) run(std::integral_constant<int, 2>{});
  if (tail & 1) run(std::integral_constant<int, 1>{});
}

// tile[0:n, 0:padded) = x[0:n] @ panel (+ bias), in balanced column chunks of at most 4 vectors
// (the strips' register budget); the panel's rows lie `stride` floats apart. x holds
// `valid` >= n rows (see project_rows).
void project_block(const float* x, int64_t x_stride, int64_t n, int64_t valid, int64_t in,
                   const float* panel, int64_t stride, int64_t padded, const float* bias,
                   float* tile) {
  const int64_t vectors = padded / kLanes;
  const int64_t chunks = (vectors + 3) / 4, base = vectors / chunks, extra = vectors % chunks;
  for (int64_t c = 0, i = 0; c < vectors; ++i) {
    const int64_t chunk = base + (i < extra ? 1 : 0);
    const float* p = panel + c * kLanes;
    const float* b = bias ? bias + c * kLanes : nullptr;
    float* t = tile + c * kLanes;
    // The first chunk fetches the rows after the block; later ones find the block in cache.
    const int64_t rows_valid = c == 0 ? valid : n;
    switch (chunk) {
      case 1: project_rows<1>(x, x_stride, n, rows_valid, in, p, stride, b, t, padded); break;
      case 2: project_rows<2>(x, x_stride, n, rows_valid, in, p, stride, b, t, padded); break;
      case 3: project_rows<3>(x, x_stride, n, rows_valid, in, p, stride, b, t, padded); break;
      default: project_rows<4>(x, x_stride, n, rows_valid, in, p, stride, b, t, padded); break;
    }
    c += chunk;
  }
}

// Transposes the 16 x 16 floats r[0..16) in registers (64 shuffles): row i lane j -> row j lane i.
inline void transpose16(__m512 r[16]) {
  __m512 t[16], u[16];
  // t[2i], t[2i+1]: in each 128-bit lane l, rows 2i and 2i+1 interleaved at columns 4l..4l+3.
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  // u[4i + c]: 128-bit lane l holds rows 4i..4i+3 at column 4l + c.
  for (int i = 0; i < 4; ++i) {
    u[4 * i] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
    u[4 * i + 1] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0xEE);
    u[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
    u[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
  }
  // Column 4l + c: lane l of u[c], u[4 + c], u[8 + c], u[12 + c].
  for (int c = 0; c < 4; ++c) {
    const __m512 even01 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0x88);  // lanes 0, 2 of each
    const __m512 odd01 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0xDD);   // lanes 1, 3 of each
    const __m512 even23 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0x88);
    const __m512 odd23 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0xDD);
    r[c] = _mm512_shuffle_f32x4(even01, even23, 0x88);
    r[4 + c] = _mm512_shuffle_f32x4(odd01, odd23, 0x88);
    r[8 + c] = _mm512_shuffle_f32x4(even01, even23, 0xDD);
    r[12 + c] = _mm512_shuffle_f32x4(odd01, odd23, 0xDD);
  }
}

// panel[k, j] = w[j, k] for j < width, 0 for width <= j < padded; w is (width, in) contiguous.
// 16 x 16 blocks transposed in registers, 16 rows of w at a time read front to back: masked loads
// never read past w's rows, and every store is a whole 16-float piece of a panel row that exists
// (padded is a multiple of 16). 96 x 768 takes 10-16 us (a scalar loop: ~32 us), bound by L1/L2
// traffic rather than by the shuffles (a variant with half the shuffles was no faster).
void pack_panel(const float* w, int64_t width, int64_t in, int64_t padded, float* panel) {
  __m512 r[16];
  for (int64_t j0 = 0; j0 < padded; j0 += kLanes) {
    const int64_t jn = std::min(kLanes, width - j0);
    for (int64_t k0 = 0; k0 < in; k0 += kLanes) {
      const int64_t kn = std::min(kLanes, in - k0);
      const __mmask16 lanes = static_cast<__mmask16>((1u << kn) - 1u);
      for (int i = 0; i < 16; ++i) {
        r[i] = i < jn ? _mm512_maskz_loadu_ps(lanes, w + (j0 + i) * in + k0) : _mm512_setzero_ps();
      }
      transpose16(r);
      if (kn == kLanes) {
        for (int i = 0; i < 16; ++i) _mm512_store_ps(panel + (k0 + i) * padded + j0, r[i]);
      } else {  // the last rows of k: through memory, so that r is never indexed at run time
        alignas(64) float rows_out[16][16];
        for (int i = 0; i < 16; ++i) _mm512_store_ps(rows_out[i], r[i]);
        for (int64_t i = 0; i < kn; ++i) {
          std::memcpy(panel + (k0 + i) * padded + j0, rows_out[i], sizeof rows_out[i]);
        }
      }
    }
  }
}

// This thread's buffer `slot` (0: the panel, 1: staged or decoded rows, 2: an output tile) of at
// least `floats` floats, 64-byte aligned, kept between calls: malloc maps a fresh block of a few
// hundred KiB anew, and every call would page-fault through it (measured: 20-100 us for
// 288 KiB). At most about 3 MiB a thread: a 1 MiB panel, 24 staged rows of up to 16384 floats
// (1.5 MiB) and a 192 KiB tile.
float* thread_buffer(int slot, int64_t floats) {
  thread_local std::vector<float> buffers[3];
  std::vector<float>& buffer = buffers[slot];
  const size_t want = static_cast<size_t>(floats) + 64 / sizeof(float);
  if (buffer.size() < want) buffer.resize(want);
  const auto address = reinterpret_cast<uintptr_t>(buffer.data());
  return reinterpret_cast<float*>((address + 63) & ~uintptr_t{63});
}

// The panel a task multiplies by: the weight `w` itself when it is one (in_place), else packed
// into this thread's buffer. Each task packs its own, so that it sits in this core's L2 rather
// than across cores; the tasks pack at the same time, so this costs no wall time over one shared
// pack. A weight that is a panel already is only read, by every core (weight_is_panel).
const float* task_panel(const float* w, bool in_place, int64_t width, int64_t in,
                        int64_t padded) {
  if (in_place) return w;
  float* packed = thread_buffer(0, in * padded);
  pack_panel(w, width, in, padded, packed);
  return packed;
}

// Rows [0, n) of x (row stride x_stride, unit column stride) as float32, in `buf` (n, in).
template <typename T>
void stage_rows(const T* x, int64_t x_stride, int64_t n, int64_t in, float* buf) {
  for (int64_t r = 0; r < n; ++r) {
    const T* src = x + r * x_stride;
    float* dst = buf + r * in;
    int64_t k = 0;
    for (; k + kLanes <= in; k += kLanes) {
      const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + k));
      __m512 f;
      if constexpr (std::is_same_v<T, c10::Half>) {
        f = _mm512_cvtph_ps(h);
      } else {  // bfloat16: the top half of a float32
        f = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
      }
      _mm512_storeu_ps(dst + k, f);
    }
    for (; k < in; ++k) dst[k] = static_cast<float>(src[k]);
  }
}

// Whether `weight` (out, in) is a panel as pack_panel makes it, to be read in place: float32
// stored transposed (weight.T contiguous, or rows of its transpose a multiple of 16 floats apart)
// with whole vectors of output features. Such a weight costs no pack (10-16 us a call at
// 96 x 768).
bool weight_is_panel(const at::Tensor& weight) {
  return weight.scalar_type() == at::kFloat && weight.stride(0) == 1 &&
         weight.size(0) % kLanes == 0 && weight.stride(1) % kLanes == 0;
}

// Whether the skinny kernel's dot-product form takes `rows` rows to a weight of `width` x `in`.
bool dot_fits(int64_t rows, int64_t in, int64_t width) {
  return width <= kSkinnyMaxOut && rows < kDotMaxRows &&
         in * width * int64_t{sizeof(float)} <= kDotMaxWeightBytes;
}

// Whether the skinny kernel takes x (rows, in) to weight's output features: a panel read in
// place at any number of rows, a packed one at kSkinnyMinRows or more unless it is small.
bool skinny_fits(const at::Tensor& x, const at::Tensor& weight) {
  const int64_t rows = x.size(0), in = x.size(1), width = weight.size(0);
  const int64_t panel_bytes = in * padded_width(width) * int64_t{sizeof(float)};
  const int64_t max_panel = width <= 4 * kLanes ? kSkinnyMaxPanelBytesOneChunk
                                                : kSkinnyMaxPanelBytes;
  return width <= kSkinnyMaxOut && panel_bytes <= max_panel &&
         (rows >= kSkinnyMinRows || panel_bytes <= kSkinnySmallPanelBytes ||
          weight_is_panel(weight));
}

// project_quantize_cpu on the skinny kernel: fills codes, scales and zero_points (as allocated by
// the caller, rows >= 1 and width >= 1).
void project_quantize_skinny(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                             int64_t bits, int64_t group_size, bool symmetric, at::Tensor& codes,
                             at::Tensor& scales, at::Tensor& zero_points) {
  const int64_t rows = x.size(0), in = x.size(1), width = weight.size(0);
  const int64_t padded = padded_width(width);
  const bool in_place = weight_is_panel(weight);
  const at::Tensor w = in_place ? weight : weight.to(at::kFloat).contiguous();
  const float* wp = w.data_ptr<float>();
  const int64_t panel_stride = in_place ? weight.stride(1) : padded;
  alignas(64) float bias_padded[kSkinnyMaxOut] = {};
  if (bias.defined()) {
    const at::Tensor b = bias.to(at::kFloat).contiguous();
    std::memcpy(bias_padded, b.data_ptr<float>(), width * sizeof(float));
  }
  const float* bias_p = bias.defined() ? bias_padded : nullptr;

  const int64_t block = skinny_block_rows(padded);
  const int64_t x_stride = rows > 1 ? x.stride(0) : in;
  const int64_t row_bytes = codes.size(1), groups = scales.size(1);
  uint8_t* cp = codes.data_ptr<uint8_t>();
  float* sp = scales.data_ptr<float>();
  float* zp = symmetric ? nullptr : zero_points.data_ptr<float>();
  const at::ScalarType dtype = x.scalar_type();
  const float* x32 = dtype == at::kFloat ? x.data_ptr<float>() : nullptr;
  TORCH_CHECK(width <= kSkinnyMaxOut && block * padded <= kSkinnyTileCapacity,
              "project_quantize_skinny: ", width, " output features exceed the tile");
  share_rows(rows, chunk_rows(in, block), kChunkStep, min_task_rows(in, padded),
             [&](RowQueue& queue) {
    int64_t first = 0, count = 0;
    if (!queue.next(first, count)) return;
    const float* panel = task_panel(wp, in_place, width, in, padded);
    alignas(64) float tile[kSkinnyTileCapacity];
    // float16/bfloat16 x: kStripLcm rows at a time converted to float32 (at most 1.5 MiB).
    float* staged = dtype == at::kFloat ? nullptr : thread_buffer(1, kStripLcm * in);
    do {
      for (int64_t start = first; start < first + count; start += block) {
        const int64_t n = std::min(block, first + count - start);
        if (dtype == at::kFloat) {
          project_block(x32 + start * x_stride, x_stride, n, rows - start, in, panel,
                        panel_stride, padded, bias_p, tile);
        } else {
          for (int64_t s = 0; s < n; s += kStripLcm) {
            const int64_t m = std::min(kStripLcm, n - s), row = (start + s) * x_stride;
            if (dtype == at::kHalf) {
              stage_rows(x.data_ptr<c10::Half>() + row, x_stride, m, in, staged);
            } else {
              stage_rows(x.data_ptr<c10::BFloat16>() + row, x_stride, m, in, staged);
            }
            project_block(staged, in, m, m, in, panel, panel_stride, padded, bias_p,
                          tile + s * padded);
          }
        }
        quantize_rows_f32(tile, n, padded, width, bits, group_size, symmetric,
                          cp + start * row_bytes, sp + start * groups,
                          symmetric ? nullptr : zp + start * groups);
      }
    } while (queue.next(first, count));
  });
}

// Whether dequantize_project_cpu takes the skinny kernel: a packed panel that stays in L2, at
// most kDecodeMaxWidth output features (the outputs go to memory, through a tile of 24 rows
// when they are not whole vectors: at most 192 KiB), and enough rows to pay for the pack unless
// the weight is a panel already.
constexpr int64_t kDecodeMaxWidth = 2048;

bool decode_skinny_fits(int64_t rows, int64_t row_len, const at::Tensor& weight) {
  const int64_t padded = padded_width(weight.size(0));
  const int64_t panel_bytes = row_len * padded * int64_t{sizeof(float)};
  return row_len >= 1 && padded <= kDecodeMaxWidth && panel_bytes <= kSkinnyMaxPanelBytes &&
         (rows >= kSkinnyMinRows || weight_is_panel(weight));
}

// dequantize_project_cpu on the skinny kernel into float32 `out`: each task packs the panel (as
// project_quantize_skinny does), decodes a block of its rows into a buffer in L1/L2
// (dequantize_rows_f32) and multiplies it by the panel with the bias added last, straight into
// `out` when its rows are whole aligned vectors, else through a tile. At::addmm with a bias
// costs ~30% more than without on 197 x 96 -> 768 (140 us against 100 us), and addmm alone is
// slower than the register-blocked kernel.
void dequantize_project_skinny(const at::Tensor& codes, const at::Tensor& scales,
                               const at::Tensor& zero_points, int64_t bits, int64_t group_size,
                               int64_t row_len, bool symmetric, const at::Tensor& weight,
                               const at::Tensor& bias, at::Tensor& out) {
  const int64_t rows = codes.size(0), width = weight.size(0), padded = padded_width(width);
  const bool in_place = weight_is_panel(weight);
  const at::Tensor w = in_place ? weight : weight.to(at::kFloat).contiguous();
  const float* wp = w.data_ptr<float>();
  const int64_t panel_stride = in_place ? weight.stride(1) : padded;
  at::Tensor bias_padded;  // whole vectors, 64-byte aligned (the CPU allocator's alignment)
  if (bias.defined()) {
    bias_padded = at::zeros({padded}, out.options());
    bias_padded.narrow(0, 0, width).copy_(bias);
  }
  const float* bias_p = bias.defined() ? bias_padded.data_ptr<float>() : nullptr;
  float* op = out.data_ptr<float>();
  const bool direct = width == padded && reinterpret_cast<uintptr_t>(op) % 64 == 0;
  const int64_t block = kStripLcm;
  const uint8_t* cp = codes.data_ptr<uint8_t>();
  const float* sp = scales.data_ptr<float>();
  const float* zp = symmetric ? nullptr : zero_points.data_ptr<float>();
  const int64_t row_bytes = codes.size(1), groups = scales.size(1);  // contiguous (checked)
  share_rows(rows, chunk_rows(width, block), kChunkStep, min_task_rows(row_len, padded),
             [&](RowQueue& queue) {
    int64_t first = 0, count = 0;
    if (!queue.next(first, count)) return;
    const float* panel = task_panel(wp, in_place, width, row_len, padded);
    float* decoded = thread_buffer(1, block * row_len);
    float* tile = direct ? nullptr : thread_buffer(2, block * padded);
    do {
      for (int64_t start = first; start < first + count; start += block) {
        const int64_t n = std::min(block, first + count - start);
        dequantize_rows_f32(cp + start * row_bytes, row_bytes, sp + start * groups, groups,
                            symmetric ? nullptr : zp + start * groups, groups, n, row_len, bits,
                            group_size, symmetric, decoded, row_len);
        float* dst = direct ? op + start * width : tile;
        project_block(decoded, row_len, n, n, row_len, panel, panel_stride, padded, bias_p, dst);
        if (!direct) {
          for (int64_t r = 0; r < n; ++r) {
            std::memcpy(op + (start + r) * width, tile + r * padded, width * sizeof(float));
          }
        }
      }
    } while (queue.next(first, count));
  });
}

// project_quantize_cpu for a few rows (dot_fits), in the dot-product form: the threads take
// pairs of output features (the weight streams once per strip of 8 rows, and with few rows the
// rows alone would leave threads idle) into one tile of every row (rows < kDotMaxRows, at most
// 32 KiB), which the calling thread then quantizes. float16/bfloat16 x is converted first.
void project_quantize_dot(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                          int64_t bits, int64_t group_size, bool symmetric, at::Tensor& codes,
                          at::Tensor& scales, at::Tensor& zero_points) {
  const int64_t rows = x.size(0), in = x.size(1), width = weight.size(0);
  const bool rows_as_they_lie = weight.scalar_type() == at::kFloat && weight.stride(1) == 1 &&
                                (width == 1 || weight.stride(0) >= in);
  const at::Tensor w = rows_as_they_lie ? weight : weight.to(at::kFloat).contiguous();
  const at::Tensor x32 = x.scalar_type() == at::kFloat ? x : x.to(at::kFloat).contiguous();
  const float* xp = x32.data_ptr<float>();
  const float* wp = w.data_ptr<float>();
  const float* bp = bias.defined() ? bias.data_ptr<float>() : nullptr;
  const int64_t x_stride = rows > 1 ? x32.stride(0) : in, w_stride = width > 1 ? w.stride(0) : in;
  std::vector<float> tile(static_cast<size_t>(rows * width));
  const int64_t pairs = (width + 1) / 2;
  const int64_t grain = std::max<int64_t>(1, kMinTaskFmas / (2 * rows * std::max<int64_t>(in, 1)));
  at::parallel_for(0, pairs, grain, [&](int64_t begin, int64_t end) {
    const int64_t first = 2 * begin, last = std::min(width, 2 * end);
    dot_strips::project(xp, x_stride, rows, in, wp + first * w_stride, w_stride, last - first,
                        bp ? bp + first : nullptr, tile.data() + first, width);
  });
  quantize_rows_f32(tile.data(), rows, width, width, bits, group_size, symmetric,
                    codes.data_ptr<uint8_t>(), scales.data_ptr<float>(),
                    symmetric ? nullptr : zero_points.data_ptr<float>());
}
#endif
}  // namespace

std::vector<at::Tensor> project_quantize_cpu(const at::Tensor& x, const at::Tensor& weight,
                                             const c10::optional<at::Tensor>& bias, int64_t bits,
                                             int64_t group_size, bool symmetric) {
  TORCH_CHECK(x.device().is_cpu() && x.dim() == 2 && is_float_type(x.scalar_type()),
              "project_quantize_cpu: x must be a 2-D float32/float16/bfloat16 CPU tensor");
  TORCH_CHECK(x.size(1) <= 1 || x.stride(1) == 1,
              "project_quantize_cpu: x's last stride must be 1");
  TORCH_CHECK(bits == 2 || bits == 4 || bits == 8, "bits must be 2, 4 or 8; got ", bits);
  TORCH_CHECK(group_size >= 1, "group_size must be >= 1; got ", group_size);
  check_projection("project_quantize_cpu", weight, bias, x.size(1));
  c10::AutoGradMode no_grad(false);
  const int64_t rows = x.size(0), width = weight.size(0);
  const at::Tensor b =
      bias.has_value() && bias->defined() ? bias->to(at::kFloat).contiguous() : at::Tensor();
  const int64_t groups = width > 0 ? (width + group_size - 1) / group_size : 0;
  const int64_t group_bytes = (group_size * bits + 7) / 8;
  const int64_t last = width - (groups - 1) * group_size;
  const int64_t row_bytes = groups > 0 ? (groups - 1) * group_bytes + (last * bits + 7) / 8 : 0;
  const auto f32 = x.options().dtype(at::kFloat);
  at::Tensor codes = at::empty({rows, row_bytes}, x.options().dtype(at::kByte));
  at::Tensor scales = at::empty({rows, groups}, f32);
  at::Tensor zero_points = symmetric ? at::empty({0}, f32) : at::empty({rows, groups}, f32);
  if (rows == 0 || groups == 0) return {codes, scales, zero_points};
#ifdef AIFLOW_AVX512
  if (!weight_is_panel(weight) && dot_fits(rows, x.size(1), width)) {
    project_quantize_dot(x, weight, b, bits, group_size, symmetric, codes, scales, zero_points);
    return {codes, scales, zero_points};
  }
  if (skinny_fits(x, weight)) {
    project_quantize_skinny(x, weight, b, bits, group_size, symmetric, codes, scales,
                            zero_points);
    return {codes, scales, zero_points};
  }
#endif
  const int64_t in = x.size(1);
  const bool convert = x.scalar_type() != at::kFloat;
  const int64_t x_stride = convert ? in : x.stride(0);  // the rows the matmul reads
  const at::Tensor w32 = weight.to(at::kFloat);
  const BlockPlan plan = plan_blocks(rows, w32, width, block_rows(rows, width, in), x_stride);
  const int64_t block = plan.block;
  const int64_t blocks = (rows + block - 1) / block;
  at::Tensor tile = at::empty({block, width}, f32);
  at::Tensor staged = convert ? at::empty({block, in}, f32) : at::Tensor();
  for (int64_t i = 0; i < blocks; ++i) {
    const int64_t start = i * block, n = std::min(block, rows - start);
    at::Tensor in_tile = x.narrow(0, start, n);
    if (convert) in_tile = staged.narrow(0, 0, n).copy_(in_tile);
    at::Tensor out_tile = tile.narrow(0, 0, n);
    project_tile(in_tile, x_stride, plan.packed, w32, b, out_tile);
    at::Tensor c = codes.narrow(0, start, n), s = scales.narrow(0, start, n);
    at::Tensor z = symmetric ? zero_points : zero_points.narrow(0, start, n);
    quantize_cpu_out(out_tile, bits, group_size, symmetric, -1, c, s, z);
  }
  return {codes, scales, zero_points};
}

at::Tensor dequantize_project_cpu(const at::Tensor& codes, const at::Tensor& scales,
                                  const at::Tensor& zero_points, int64_t bits, int64_t group_size,
                                  int64_t row_len, bool symmetric, const at::Tensor& weight,
                                  const c10::optional<at::Tensor>& bias, at::ScalarType dtype) {
  TORCH_CHECK(codes.dim() == 2, "dequantize_project_cpu: codes must be 2-D; got ", codes.dim(),
              "-D");
  TORCH_CHECK(is_float_type(dtype), "dtype must be float32, float16 or bfloat16; got ", dtype);
  check_projection("dequantize_project_cpu", weight, bias, row_len);
  c10::AutoGradMode no_grad(false);
  const int64_t rows = codes.size(0), width = weight.size(0);
  const at::Tensor b =
      bias.has_value() && bias->defined() ? bias->to(at::kFloat).contiguous() : at::Tensor();
  const auto f32 = codes.options().dtype(at::kFloat);
  at::Tensor out = at::empty({rows, width}, codes.options().dtype(dtype));
  advise_huge_pages(out);
  if (rows == 0 || width == 0) return out;
  if (row_len == 0) return out.zero_().add_(b.defined() ? b : at::zeros({width}, f32));
  const bool convert = dtype != at::kFloat;
#ifdef AIFLOW_AVX512
  if (!convert && decode_skinny_fits(rows, row_len, weight)) {
    check_dequantize_args(codes, scales, zero_points, bits, group_size, row_len, symmetric);
    dequantize_project_skinny(codes, scales, zero_points, bits, group_size, row_len, symmetric,
                              weight, b, out);
    return out;
  }
#endif
  const at::Tensor w32 = weight.to(at::kFloat);
  // Packed blocks are sized by the larger of the decoded tile and the output tile: the bias
  // written into the output and the product added to it meet in cache.
  const BlockPlan plan = plan_blocks(rows, w32, std::max(row_len, width),
                                     block_rows(rows, row_len, row_len), row_len);
  const int64_t block = plan.block;
  const int64_t blocks = (rows + block - 1) / block;
  at::Tensor decoded = at::empty({block, row_len}, f32);
  at::Tensor projected = convert ? at::empty({block, width}, f32) : at::Tensor();
  for (int64_t i = 0; i < blocks; ++i) {
    const int64_t start = i * block, n = std::min(block, rows - start);
    at::Tensor in_tile = decoded.narrow(0, 0, n);
    at::Tensor z = symmetric ? zero_points : zero_points.narrow(0, start, n);
    dequantize_cpu_out(codes.narrow(0, start, n), scales.narrow(0, start, n), z, bits,
                       group_size, row_len, symmetric, in_tile);
    at::Tensor out_tile = out.narrow(0, start, n);
    at::Tensor f = convert ? projected.narrow(0, 0, n) : out_tile;
    project_tile(in_tile, row_len, plan.packed, w32, b, f);
    if (convert) out_tile.copy_(f);
  }
  return out;
}
