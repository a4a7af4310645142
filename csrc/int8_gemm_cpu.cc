// CPU kernel of ai.embedrt::PackedMatMulInteger (semantics and layout in int8_gemm.h).
//
// Build: pip install -e .   (or: embedrt build-ops)
// Test:  python -m pytest -q tests/native/test_int8_gemm.py      (EMBEDRT_OPS_ISA=scalar forces the portable path)
//
// AVX2 tile: R <= 4 rows x 16 columns, 8 int32 accumulators. One k-quad step loads the panel's 64 bytes (two
// ymm: columns 0-7 and 8-15, four k each), broadcasts four A bytes per row, and per row and half does
// pmaddubsw (16 pairs of u8 * s8 summed into int16), pmaddwd by ones (pairs of int16 summed into int32: four k
// per lane) and paddd. A panel (K x 16 bytes: 6 KiB at K = 384, 24 KiB at 1536) stays in L1 while the task's
// rows go by. The x86 intrinsics are compiled per function (target attributes) and chosen at run time; off
// x86-64 only the portable path is built.
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>

#include "int8_gemm.h"

namespace embedrt {

void PackedInt8::Free::operator()(uint8_t* p) const { std::free(p); }

PackedInt8 PackInt8Weights(const int8_t* B, int64_t K, int64_t N) {
  PackedInt8 out;
  out.K = K;
  out.N = N;
  out.quads = (K + 3) / 4;
  out.panels = (N + kI8Panel - 1) / kI8Panel;
  const size_t bytes = static_cast<size_t>(out.panels * out.quads * 64);
  out.data.reset(static_cast<uint8_t*>(std::aligned_alloc(64, bytes > 0 ? bytes : 64)));
  if (!out.data) throw std::bad_alloc();
  std::memset(out.data.get(), 0, bytes > 0 ? bytes : 64);
  out.colsum.reset(new int32_t[static_cast<size_t>(std::max<int64_t>(out.panels * kI8Panel, 1))]());
  bool fits = true;
  uint8_t* dst = out.data.get();
  for (int64_t p = 0; p < out.panels; ++p)
    for (int64_t c = 0; c < kI8Panel; ++c) {
      const int64_t n = p * kI8Panel + c;
      if (n >= N) continue;
      int32_t sum = 0;
      for (int64_t k = 0; k < K; ++k) {
        const int8_t w = B[k * N + n];
        sum += w;
        std::memcpy(dst + (p * out.quads + k / 4) * 64 + 4 * c + k % 4, &w, 1);
        // a pmaddubsw pair is (k, k + 1) for even k; 255 * (|w_k| + |w_k+1|) must stay <= 32,767
        if (k % 2 == 0) {
          const int pair = std::abs(static_cast<int>(w)) + (k + 1 < K ? std::abs(static_cast<int>(B[(k + 1) * N + n])) : 0);
          if (255 * pair > 32767) fits = false;
        }
      }
      out.colsum[static_cast<size_t>(n)] = sum;
    }
  out.pairs_fit_int16 = fits;
  return out;
}

namespace {

// The portable path: exact for any int8 weights (int32 products and sums).
void BlockScalar(const uint8_t* A, const PackedInt8& B, int32_t zp, int32_t* y, int64_t r0, int64_t r1, int64_t p0,
                 int64_t p1) {
  const int64_t K = B.K, N = B.N;
  for (int64_t p = p0; p < p1; ++p) {
    const int8_t* panel = reinterpret_cast<const int8_t*>(B.data.get()) + p * B.quads * 64;
    const int64_t n0 = p * kI8Panel, cols = std::min<int64_t>(kI8Panel, N - n0);
    for (int64_t r = r0; r < r1; ++r) {
      int32_t acc[kI8Panel] = {};
      const uint8_t* a = A + r * K;
      for (int64_t k = 0; k < K; ++k) {
        const int32_t av = a[k];
        const int8_t* w = panel + (k / 4) * 64 + k % 4;
        for (int64_t c = 0; c < kI8Panel; ++c) acc[c] += av * w[4 * c];
      }
      for (int64_t c = 0; c < cols; ++c) y[r * N + n0 + c] = acc[c] - zp * B.colsum[static_cast<size_t>(n0 + c)];
    }
  }
}

#if defined(__x86_64__)
// Four bytes of a row as one int32, zero past K (the tail quad of a K that is not a multiple of 4).
inline int32_t Quad(const uint8_t* a, int64_t k, int64_t K) {
  int32_t v = 0;
  if (k + 4 <= K) {
    std::memcpy(&v, a + k, 4);
  } else {
    uint8_t b[4] = {0, 0, 0, 0};
    for (int64_t i = k; i < K; ++i) b[i - k] = a[i];
    std::memcpy(&v, b, 4);
  }
  return v;
}

// One k-quad of one row: acc0/acc1 += pmaddwd(pmaddubsw(broadcast(a quad), b0/b1), 1). Written as one asm
// block with two scratch registers: compiled from intrinsics, GCC 12 issued every pmaddubsw of the 4-row tile
// first and spilled an accumulator to the stack, which cost about 20% against onnxruntime's kernel.
__attribute__((target("avx2"))) inline void RowQuadAvx2(const uint8_t* a, __m256i b0, __m256i b1, __m256i ones,
                                                        __m256i& acc0, __m256i& acc1) {
  asm("vpbroadcastd %[q], %%ymm2\n\t"
      "vpmaddubsw %[b0], %%ymm2, %%ymm3\n\t"
      "vpmaddwd %[ones], %%ymm3, %%ymm3\n\t"
      "vpaddd %%ymm3, %[c0], %[c0]\n\t"
      "vpmaddubsw %[b1], %%ymm2, %%ymm2\n\t"
      "vpmaddwd %[ones], %%ymm2, %%ymm2\n\t"
      "vpaddd %%ymm2, %[c1], %[c1]"
      : [c0] "+x"(acc0), [c1] "+x"(acc1)
      : [q] "m"(*reinterpret_cast<const int32_t*>(a)), [b0] "x"(b0), [b1] "x"(b1), [ones] "x"(ones)
      : "xmm2", "xmm3");
}

// The accumulators are named variables: an array of them, passed to the asm by reference, stayed on the stack.
template <int R>
__attribute__((target("avx2"))) void TileAvx2(const uint8_t* a, int64_t K, const uint8_t* panel, int64_t quads,
                                              const __m256i corr0, const __m256i corr1, int32_t* y, int64_t ldy,
                                              int cols) {
  __m256i c00 = _mm256_setzero_si256(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00,
          c31 = c00;
  const __m256i ones = _mm256_set1_epi16(1);
  const int64_t full = K / 4;
  const uint8_t* a0 = a;
  const uint8_t* a1 = a + K;
  const uint8_t* a2 = a + 2 * K;
  const uint8_t* a3 = a + 3 * K;
  for (int64_t q = 0; q < full; ++q) {
    const __m256i b0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(panel + q * 64));
    const __m256i b1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(panel + q * 64 + 32));
    RowQuadAvx2(a0 + 4 * q, b0, b1, ones, c00, c01);
    if constexpr (R > 1) RowQuadAvx2(a1 + 4 * q, b0, b1, ones, c10, c11);
    if constexpr (R > 2) RowQuadAvx2(a2 + 4 * q, b0, b1, ones, c20, c21);
    if constexpr (R > 3) RowQuadAvx2(a3 + 4 * q, b0, b1, ones, c30, c31);
  }
  __m256i c0[4] = {c00, c10, c20, c30}, c1[4] = {c01, c11, c21, c31};
  if (full < quads) {  // the tail quad, zero-padded on both sides
    const __m256i b0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(panel + full * 64));
    const __m256i b1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(panel + full * 64 + 32));
    for (int i = 0; i < R; ++i) {
      const __m256i av = _mm256_set1_epi32(Quad(a + i * K, 4 * full, K));
      c0[i] = _mm256_add_epi32(c0[i], _mm256_madd_epi16(_mm256_maddubs_epi16(av, b0), ones));
      c1[i] = _mm256_add_epi32(c1[i], _mm256_madd_epi16(_mm256_maddubs_epi16(av, b1), ones));
    }
  }
  if (cols == kI8Panel) {
#pragma GCC unroll 4
    for (int i = 0; i < R; ++i) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + i * ldy), _mm256_sub_epi32(c0[i], corr0));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + i * ldy + 8), _mm256_sub_epi32(c1[i], corr1));
    }
  } else {
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i m0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(cols), lane);
    const __m256i m1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(cols - 8), lane);
    for (int i = 0; i < R; ++i) {
      _mm256_maskstore_epi32(y + i * ldy, m0, _mm256_sub_epi32(c0[i], corr0));
      _mm256_maskstore_epi32(y + i * ldy + 8, m1, _mm256_sub_epi32(c1[i], corr1));
    }
  }
}

using TileFn = void (*)(const uint8_t*, int64_t, const uint8_t*, int64_t, const __m256i, const __m256i, int32_t*,
                        int64_t, int);

__attribute__((target("avx2"))) void BlockAvx2(const uint8_t* A, const PackedInt8& B, int32_t zp, int32_t* y,
                                               int64_t r0, int64_t r1, int64_t p0, int64_t p1) {
  static constexpr TileFn kTiles[4] = {TileAvx2<1>, TileAvx2<2>, TileAvx2<3>, TileAvx2<4>};
  const int64_t K = B.K, N = B.N;
  const __m256i vzp = _mm256_set1_epi32(zp);
  for (int64_t p = p0; p < p1; ++p) {
    const uint8_t* panel = B.data.get() + p * B.quads * 64;
    const int64_t n0 = p * kI8Panel;
    const int cols = static_cast<int>(std::min<int64_t>(kI8Panel, N - n0));
    const int32_t* cs = B.colsum.get() + n0;
    const __m256i corr0 = _mm256_mullo_epi32(vzp, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(cs)));
    const __m256i corr1 = _mm256_mullo_epi32(vzp, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(cs + 8)));
    for (int64_t r = r0; r < r1; r += 4) {
      const int n = static_cast<int>(std::min<int64_t>(4, r1 - r));
      kTiles[n - 1](A + r * K, K, panel, B.quads, corr0, corr1, y + r * N + n0, N, cols);
    }
  }
}
#endif  // __x86_64__

}  // namespace

void Int8GemmBlock(const uint8_t* A, const PackedInt8& B, int32_t zero_point, int32_t* y, int64_t r0, int64_t r1,
                   int64_t p0, int64_t p1, Isa isa) {
  if (r1 <= r0 || p1 <= p0) return;
#if defined(__x86_64__)
  if (isa != Isa::kScalar && B.pairs_fit_int16) {
    BlockAvx2(A, B, zero_point, y, r0, r1, p0, p1);
    return;
  }
#else
  (void)isa;
#endif
  BlockScalar(A, B, zero_point, y, r0, r1, p0, p1);
}

}  // namespace embedrt
