// CPU kernel of ai.embedrt::Attention (semantics in attention.h).
//
// Build: pip install -e .   (or: embedrt build-ops)
// Test:  python -m pytest -q tests/native/test_attention.py   (EMBEDRT_OPS_ISA=scalar|avx2|avx512 forces a path)
//
// One body over a vector type (scalar, AVX2, AVX-512): scores are vectors over j (K transposed and padded per
// head), the context vectors over d, each lane its own element; explicit fused multiply-adds, so each element
// sees the same operations on every path (the scalar path's std::fma is exact, if slow without FMA hardware).
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "attention.h"

namespace embedrt {
namespace {

constexpr float kLog2e = 1.44269504088896341f, kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;
constexpr float kE0 = 1.9875691500e-4f, kE1 = 1.3981999507e-3f, kE2 = 8.3334519073e-3f, kE3 = 4.1665795894e-2f,
                kE4 = 1.6666665459e-1f, kE5 = 5.0000001201e-1f;
constexpr float kExpLow = -87.33654f;  // below: 0 (float's exp is denormal there, then 0)

// exp(x) for x <= 0 (Cody-Waite by ln 2, Cephes' expf polynomial), 0 below kExpLow. Branch-free, so that the
// loop that calls it vectorises.
__attribute__((always_inline)) inline float ExpNonPositive(float x) {
  const float xc = x < kExpLow ? kExpLow : x;
  const float j = std::floor(std::fma(xc, kLog2e, 0.5f));
  float f = std::fma(j, -kLn2Hi, xc);
  f = std::fma(j, -kLn2Lo, f);
  const float z = f * f;
  float p = std::fma(kE0, f, kE1);
  p = std::fma(p, f, kE2);
  p = std::fma(p, f, kE3);
  p = std::fma(p, f, kE4);
  p = std::fma(p, f, kE5);
  p = std::fma(p, z, f) + 1.0f;
  int32_t bits;
  std::memcpy(&bits, &p, sizeof bits);
  bits += static_cast<int32_t>(j) * (1 << 23);
  std::memcpy(&p, &bits, sizeof p);
  return x < kExpLow ? 0.0f : p;
}

// The vector operations one path uses: scalar (W = 1), AVX2 (8 lanes), AVX-512 (16 lanes). Each lane does
// the same IEEE operations in the same order, so the three paths give the same bits.
constexpr int64_t kLanes = 16;  // rows are padded to a multiple of this; the softmax sum has this many parts

namespace scalar {
struct Ops {
  static constexpr int W = 1;
  static constexpr int kRows = 4;
  using V = float;
  static V Load(const float* p) { return *p; }
  static void Store(float* p, V v) { *p = v; }
  static V Set(float x) { return x; }
  static V Fma(V a, V b, V c) { return std::fma(a, b, c); }
  static V Mul(V a, V b) { return a * b; }
  static V Add(V a, V b) { return a + b; }
  static V Max(V a, V b) { return std::max(a, b); }
  static float ReduceMax(V a) { return a; }
  static V Exp(V x) { return ExpNonPositive(x); }
};
#include "attention_body.inc"
}  // namespace scalar

#if defined(__x86_64__)
#pragma GCC push_options
#pragma GCC target("avx2,fma")
namespace avx2 {
struct Ops {
  static constexpr int W = 8;
  static constexpr int kRows = 4;  // 2 x 4 accumulators of the 16 ymm registers
  using V = __m256;
  static V Load(const float* p) { return _mm256_loadu_ps(p); }
  static void Store(float* p, V v) { _mm256_storeu_ps(p, v); }
  static V Set(float x) { return _mm256_set1_ps(x); }
  static V Fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static V Mul(V a, V b) { return _mm256_mul_ps(a, b); }
  static V Add(V a, V b) { return _mm256_add_ps(a, b); }
  static V Max(V a, V b) { return _mm256_max_ps(a, b); }
  static float ReduceMax(V a) {
    float l[8];
    _mm256_storeu_ps(l, a);
    float m = l[0];
    for (int i = 1; i < 8; ++i) m = std::max(m, l[i]);
    return m;
  }
  static V Exp(V x) {
    const V xc = _mm256_max_ps(x, _mm256_set1_ps(kExpLow));
    const V j = _mm256_floor_ps(_mm256_fmadd_ps(xc, _mm256_set1_ps(kLog2e), _mm256_set1_ps(0.5f)));
    V f = _mm256_fmadd_ps(j, _mm256_set1_ps(-kLn2Hi), xc);
    f = _mm256_fmadd_ps(j, _mm256_set1_ps(-kLn2Lo), f);
    const V z = _mm256_mul_ps(f, f);
    V p = _mm256_fmadd_ps(_mm256_set1_ps(kE0), f, _mm256_set1_ps(kE1));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(kE2));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(kE3));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(kE4));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(kE5));
    p = _mm256_add_ps(_mm256_fmadd_ps(p, z, f), _mm256_set1_ps(1.0f));
    p = _mm256_castsi256_ps(_mm256_add_epi32(_mm256_castps_si256(p), _mm256_slli_epi32(_mm256_cvtps_epi32(j), 23)));
    // x < kExpLow (and -inf) -> 0; NaN stays NaN through the arithmetic above
    return _mm256_andnot_ps(_mm256_cmp_ps(x, _mm256_set1_ps(kExpLow), _CMP_LT_OQ), p);
  }
};
#include "attention_body.inc"
}  // namespace avx2
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f")
namespace avx512 {
struct Ops {
  static constexpr int W = 16;
  static constexpr int kRows = 8;  // 2 x 8 accumulators of the 32 zmm registers
  using V = __m512;
  static V Load(const float* p) { return _mm512_loadu_ps(p); }
  static void Store(float* p, V v) { _mm512_storeu_ps(p, v); }
  static V Set(float x) { return _mm512_set1_ps(x); }
  static V Fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static V Mul(V a, V b) { return _mm512_mul_ps(a, b); }
  static V Add(V a, V b) { return _mm512_add_ps(a, b); }
  static V Max(V a, V b) { return _mm512_max_ps(a, b); }
  static float ReduceMax(V a) { return _mm512_reduce_max_ps(a); }
  static V Exp(V x) {
    const V xc = _mm512_max_ps(x, _mm512_set1_ps(kExpLow));
    const V j = _mm512_roundscale_ps(_mm512_fmadd_ps(xc, _mm512_set1_ps(kLog2e), _mm512_set1_ps(0.5f)),
                                     _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
    V f = _mm512_fmadd_ps(j, _mm512_set1_ps(-kLn2Hi), xc);
    f = _mm512_fmadd_ps(j, _mm512_set1_ps(-kLn2Lo), f);
    const V z = _mm512_mul_ps(f, f);
    V p = _mm512_fmadd_ps(_mm512_set1_ps(kE0), f, _mm512_set1_ps(kE1));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(kE2));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(kE3));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(kE4));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(kE5));
    p = _mm512_add_ps(_mm512_fmadd_ps(p, z, f), _mm512_set1_ps(1.0f));
    p = _mm512_castsi512_ps(_mm512_add_epi32(_mm512_castps_si512(p), _mm512_slli_epi32(_mm512_cvtps_epi32(j), 23)));
    const __mmask16 low = _mm512_cmp_ps_mask(x, _mm512_set1_ps(kExpLow), _CMP_LT_OQ);
    return _mm512_maskz_mov_ps(static_cast<__mmask16>(~low), p);
  }
};
#include "attention_body.inc"
}  // namespace avx512
#pragma GCC pop_options
#endif

}  // namespace

void AttentionBlocks(const float* q, const float* k, const float* v, const float* bias, float* ctx, float scale,
                     const AttentionShape& shape, int64_t bh_begin, int64_t bh_end, Isa isa) {
  switch (isa) {
#if defined(__x86_64__)
    case Isa::kAvx512: avx512::Body(q, k, v, bias, ctx, scale, shape, bh_begin, bh_end); return;
    case Isa::kAvx2: avx2::Body(q, k, v, bias, ctx, scale, shape, bh_begin, bh_end); return;
#endif
    default: scalar::Body(q, k, v, bias, ctx, scale, shape, bh_begin, bh_end);
  }
}

}  // namespace embedrt
