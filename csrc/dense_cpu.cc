// CPU kernel of ai.embedrt::PackedMatMul (semantics in dense.h).
//
// Build: pip install -e .   (or: embedrt build-ops)
// Test:  python -m pytest -q tests/native            (EMBEDRT_OPS_ISA=scalar forces the portable path)
//
// Layout: W is packed into panels of 32 columns, each K x 32 contiguous, so one k step of a panel is two
// aligned zmm loads. A tile is up to 14 rows x 32 columns: 28 zmm accumulators, each k step broadcasting
// one x value per row against the two loaded W vectors (28 FMAs for 16 loads), so the FMA units, not the
// loads, set the pace. Rows are split into near-equal tiles (27 rows -> 14 + 13, not 14 + 13 padded).
// AVX2 + FMA (16 ymm registers): each half of a panel (16 columns) is run as sub-tiles of up to 6 rows,
// 12 ymm accumulators, two W vectors and one broadcast per k step (12 FMAs for 8 loads). For AVX2 the panel is
// packed as its two K x 16 halves one after the other (DenseHalves), so that a half's sweep over K reads
// contiguous cache lines rather than every other one of the interleaved layout.
// Every path computes each output as the same k-ordered chain of fused multiply-adds, then + bias, so the
// scalar, AVX2 and AVX-512 paths give bit-identical results (tests/native/test_dense_kernel.py).
// The x86 intrinsics are compiled per function (target attributes) and chosen by cpuid at run time
// (SelectIsa); off x86-64 only the portable path is built.
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <cstring>

#include "dense.h"

namespace embedrt {
namespace {

// The portable path: the same sum in k order (std::fma), then + bias.
void TileScalar(const float* x, int64_t K, const float* panel, const float* bias, float* y, const int64_t* row_off,
                const int64_t* col_off, int rows, int cols, bool halves) {
  for (int i = 0; i < rows; ++i) {
    float acc[kDensePanel] = {};
    const float* xr = x + i * K;
    for (int64_t k = 0; k < K; ++k)
      for (int j = 0; j < kDensePanel; ++j) {
        const float w = halves ? panel[(j / 16) * K * 16 + k * 16 + j % 16] : panel[k * kDensePanel + j];
        acc[j] = __builtin_fmaf(xr[k], w, acc[j]);
      }
    for (int j = 0; j < cols; ++j)
      y[row_off[i] + col_off[j / 16] + j % 16] = bias != nullptr ? acc[j] + bias[j] : acc[j];
  }
}

#if defined(__x86_64__)
template <int R>
__attribute__((target("avx512f"))) void TileAvx512(const float* x, int64_t K, const float* panel,
                                                  const float* bias, float* y, const int64_t* row_off,
                                                  const int64_t* col_off, int cols, const float* next) {
  __m512 c0[R], c1[R];
#pragma GCC unroll 16
  for (int i = 0; i < R; ++i) c0[i] = c1[i] = _mm512_setzero_ps();
  for (int64_t k = 0; k < K; ++k) {
    const __m512 b0 = _mm512_load_ps(panel + k * kDensePanel);
    const __m512 b1 = _mm512_load_ps(panel + k * kDensePanel + 16);
    if (next != nullptr) {
      _mm_prefetch(reinterpret_cast<const char*>(next + k * kDensePanel), _MM_HINT_T1);
      _mm_prefetch(reinterpret_cast<const char*>(next + k * kDensePanel + 16), _MM_HINT_T1);
    }
#pragma GCC unroll 16
    for (int i = 0; i < R; ++i) {
      const __m512 a = _mm512_set1_ps(x[i * K + k]);
      c0[i] = _mm512_fmadd_ps(a, b0, c0[i]);
      c1[i] = _mm512_fmadd_ps(a, b1, c1[i]);
    }
  }
  const __mmask16 m0 = cols >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << cols) - 1);
  const __mmask16 m1 = cols >= 32 ? __mmask16(0xFFFF) : cols <= 16 ? __mmask16(0) : __mmask16((1u << (cols - 16)) - 1);
  if (bias != nullptr) {
    const __m512 bb0 = _mm512_maskz_loadu_ps(m0, bias), bb1 = _mm512_maskz_loadu_ps(m1, bias + 16);
#pragma GCC unroll 16
    for (int i = 0; i < R; ++i) {
      c0[i] = _mm512_add_ps(c0[i], bb0);
      c1[i] = _mm512_add_ps(c1[i], bb1);
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < R; ++i) {
    _mm512_mask_storeu_ps(y + row_off[i] + col_off[0], m0, c0[i]);
    _mm512_mask_storeu_ps(y + row_off[i] + col_off[1], m1, c1[i]);
  }
}

using TileFn = void (*)(const float*, int64_t, const float*, const float*, float*, const int64_t*, const int64_t*, int,
                       const float*);
constexpr TileFn kTiles[kDenseRows] = {TileAvx512<1>, TileAvx512<2>,  TileAvx512<3>,  TileAvx512<4>,  TileAvx512<5>,
                                       TileAvx512<6>, TileAvx512<7>,  TileAvx512<8>,  TileAvx512<9>,  TileAvx512<10>,
                                       TileAvx512<11>, TileAvx512<12>, TileAvx512<13>, TileAvx512<14>};


constexpr int kAvx2Rows = 6;  // rows per AVX2 sub-tile (12 accumulators)

// One 16-column half of a panel (columns col_off .. col_off + cols of the output rows, cols <= 16).
template <int R>
__attribute__((target("avx2,fma"))) void HalfTileAvx2(const float* x, int64_t K, const float* half, const float* bias,
                                                     float* y, const int64_t* row_off, int64_t col_off, int cols) {
  constexpr int64_t kStride = 16;  // the halves layout: this half's K x 16 weights are contiguous
  __m256 c0[R], c1[R];
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i) c0[i] = c1[i] = _mm256_setzero_ps();
  for (int64_t k = 0; k < K; ++k) {
    const __m256 b0 = _mm256_load_ps(half + k * kStride);
    const __m256 b1 = _mm256_load_ps(half + k * kStride + 8);
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i) {
      const __m256 a = _mm256_broadcast_ss(x + i * K + k);
      c0[i] = _mm256_fmadd_ps(a, b0, c0[i]);
      c1[i] = _mm256_fmadd_ps(a, b1, c1[i]);
    }
  }
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i m0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(cols), lane);
  const __m256i m1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(cols - 8), lane);
  if (bias != nullptr) {
    const __m256 bb0 = _mm256_maskload_ps(bias, m0), bb1 = _mm256_maskload_ps(bias + 8, m1);
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i) {
      c0[i] = _mm256_add_ps(c0[i], bb0);
      c1[i] = _mm256_add_ps(c1[i], bb1);
    }
  }
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i) {
    _mm256_maskstore_ps(y + row_off[i] + col_off, m0, c0[i]);
    _mm256_maskstore_ps(y + row_off[i] + col_off + 8, m1, c1[i]);
  }
}

using HalfTileFn = void (*)(const float*, int64_t, const float*, const float*, float*, const int64_t*, int64_t, int);
constexpr HalfTileFn kHalfTilesAvx2[kAvx2Rows] = {HalfTileAvx2<1>, HalfTileAvx2<2>, HalfTileAvx2<3>,
                                                  HalfTileAvx2<4>, HalfTileAvx2<5>, HalfTileAvx2<6>};

// A tile of up to 14 rows x 32 columns: per 16-column half (its K x 16 weights stay in L1), near-equal
// sub-tiles of at most 6 rows.
void TileAvx2(const float* x, int64_t K, const float* panel, const float* bias, float* y, const int64_t* row_off,
              const int64_t* col_off, int rows, int cols) {
  const int subs = (rows + kAvx2Rows - 1) / kAvx2Rows;
  for (int h = 0; h < 2 && 16 * h < cols; ++h) {
    int r = 0;
    for (int t = 0; t < subs; ++t) {
      const int n = (rows - r + (subs - t) - 1) / (subs - t);
      kHalfTilesAvx2[n - 1](x + r * K, K, panel + 16 * K * h, bias != nullptr ? bias + 16 * h : nullptr, y, row_off + r,
                            col_off[h], std::min(cols - 16 * h, 16));
      r += n;
    }
  }
}
#endif  // __x86_64__

}  // namespace

int64_t PackedDenseSize(int64_t K, int64_t N) { return (N + kDensePanel - 1) / kDensePanel * K * kDensePanel; }

void PackDenseWeights(const float* W, int64_t K, int64_t N, float* packed, Isa isa) {
  const int64_t panels = (N + kDensePanel - 1) / kDensePanel;
  const bool halves = DenseHalves(isa);
  for (int64_t p = 0; p < panels; ++p) {
    const int64_t n0 = p * kDensePanel;
    for (int64_t k = 0; k < K; ++k)
      for (int64_t j = 0; j < kDensePanel; ++j) {
        const float w = n0 + j < N ? W[k * N + n0 + j] : 0.0f;
        // [k][32] interleaved, or the two [K][16] halves one after the other
        const int64_t at = halves ? (j / 16) * K * 16 + k * 16 + j % 16 : k * kDensePanel + j;
        packed[p * K * kDensePanel + at] = w;
      }
  }
}

void DenseBlock(const float* x, const float* packed, const float* bias, float* y, int64_t K, int64_t N,
                int64_t r0, int64_t r1, int64_t p0, int64_t p1, const DenseLayout& layout, Isa isa) {
#if !defined(__x86_64__)
  (void)isa;  // the portable path only
#endif
  const int64_t rows = r1 - r0;
  if (rows <= 0) return;
  const int64_t tiles = (rows + kDenseRows - 1) / kDenseRows;
  const int64_t D = layout.head_size;
  for (int64_t p = p0; p < p1; ++p) {
    const int64_t n0 = p * kDensePanel;
    const int cols = static_cast<int>(N - n0 < kDensePanel ? N - n0 : kDensePanel);
    const float* panel = packed + p * K * kDensePanel;
    const float* b = bias != nullptr ? bias + n0 : nullptr;
    // where each 16-column half of the panel goes within a row: [.., n] or, head-major, [h, ., d]
    int64_t col_off[2];
    for (int c = 0; c < 2; ++c) {
      const int64_t n = n0 + 16 * c;
      col_off[c] = D > 0 ? (n / D) * layout.seq * D + n % D : n;
    }
    int64_t r = r0;
    for (int64_t t = 0; t < tiles; ++t) {
      // near-equal tiles: the remaining rows over the remaining tiles, rounded up
      const int64_t left = r1 - r, n = (left + (tiles - t) - 1) / (tiles - t);
      int64_t row_off[kDenseRows];
      for (int64_t i = 0; i < n; ++i) {
        const int64_t row = r + i;
        row_off[i] = D > 0 ? ((row / layout.seq) * (N / D) * layout.seq + row % layout.seq) * D : row * N;
      }
#if defined(__x86_64__)
      if (isa == Isa::kAvx512)
        kTiles[n - 1](x + r * K, K, panel, b, y, row_off, col_off, cols,
                      t == 0 && p + 1 < p1 ? panel + K * kDensePanel : nullptr);
      else if (isa == Isa::kAvx2)
        TileAvx2(x + r * K, K, panel, b, y, row_off, col_off, static_cast<int>(n), cols);
      else
#endif
        TileScalar(x + r * K, K, panel, b, y, row_off, col_off, static_cast<int>(n), cols, DenseHalves(isa));
      r += n;
    }
  }
}

void GatherHeads(const float* x, float* out, int64_t B, int64_t H, int64_t S, int64_t D) {
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t s = 0; s < S; ++s)
        std::memcpy(out + ((b * S + s) * H + h) * D, x + ((b * H + h) * S + s) * D,
                    static_cast<size_t>(D) * sizeof(float));
}

}  // namespace embedrt
