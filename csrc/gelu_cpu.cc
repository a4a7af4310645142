// CPU kernels of the exact GELU (semantics in gelu.h).
//
// Build: pip install -e .   (or: embedrt build-ops)
// Test:  python -m pytest -q tests/native/test_gelu.py   (EMBEDRT_OPS_ISA=scalar|avx2|avx512 forces a path)
//
// erf(a) for |a| <= 0.921875 is a minimax odd polynomial, a + a * P(a^2); above, 1 - exp(Q(|a|)) with the sign
// of a, where exp is a Cody-Waite reduction by ln 2 and a degree-6 polynomial, scaled by 2^j through the
// exponent bits. The coefficients follow N. Juffa's faithfully rounded erff (the algorithm onnxruntime's
// MLAS uses too), and the exp those of Cephes' expf. Each step is one IEEE operation (an explicit fma where
// there is one), written out the same way in the three paths: the compiler may not contract or reorder
// them (this file builds with -ffp-contract=off).
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include <cmath>
#include <cstring>

#include "gelu.h"

namespace embedrt {
namespace {

constexpr float kSplit = 0.921875f;  // 59/64: below, the polynomial; above, the exp form
constexpr float kBig = 5.0f;         // erf(|a| >= 5) is 1 in float; clamping keeps exp's argument in range
// |a| <= kSplit: erf(a) = fma(P(a^2), a, a)
constexpr float kP0 = -5.96761703e-4f, kP1 = 4.99119423e-3f, kP2 = -2.67681349e-2f, kP3 = 1.12819925e-1f,
                kP4 = -3.76125336e-1f, kP5 = 1.28379166e-1f;
// |a| > kSplit: erf(a) = 1 - exp(Q(t)), t = |a|
constexpr float kQ0 = -1.72853470e-5f, kQ1 = 3.83197126e-4f, kQ2 = -3.88396438e-3f, kQ3 = 2.42546219e-2f,
                kQ4 = -1.06777877e-1f, kQ5 = -6.34846687e-1f, kQ6 = -1.28717512e-1f;
// exp(x) = 2^j * p(f), j = floor(x * log2(e) + 0.5), f = x - j * ln2 (in two parts)
constexpr float kLog2e = 1.44269504088896341f, kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;
constexpr float kE0 = 1.9875691500e-4f, kE1 = 1.3981999507e-3f, kE2 = 8.3334519073e-3f, kE3 = 4.1665795894e-2f,
                kE4 = 1.6666665459e-1f, kE5 = 5.0000001201e-1f;
constexpr float kInvSqrt2 = 0.70710678118654752f;  // x * (1/sqrt 2), as onnxruntime's Gelu (the graph divides)

inline float ExpNeg(float x) {  // x in [-40, 0]
  const float j = std::floor(std::fma(x, kLog2e, 0.5f));
  float f = std::fma(j, -kLn2Hi, x);
  f = std::fma(j, -kLn2Lo, f);
  const float z = f * f;
  float p = std::fma(kE0, f, kE1);
  p = std::fma(p, f, kE2);
  p = std::fma(p, f, kE3);
  p = std::fma(p, f, kE4);
  p = std::fma(p, f, kE5);
  p = std::fma(p, z, f);
  p = p + 1.0f;
  int32_t bits;
  std::memcpy(&bits, &p, sizeof bits);
  bits += static_cast<int32_t>(j) << 23;
  std::memcpy(&p, &bits, sizeof p);
  return p;
}

inline float GeluScalar(float x) {
  const float a = x * kInvSqrt2;
  return (x * (ErfScalar(a) + 1.0f)) * 0.5f;
}

#if defined(__x86_64__)
__attribute__((target("avx2,fma"))) inline __m256 ErfAvx2(__m256 a) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  // NOTE: min(kBig, |a|) returns |a| when it is NaN (the second operand), as the scalar path's select does
  const __m256 t = _mm256_min_ps(_mm256_set1_ps(kBig), _mm256_andnot_ps(sign, a));
  const __m256 s = _mm256_mul_ps(a, a);
  // small branch
  __m256 r = _mm256_set1_ps(kP0);
  r = _mm256_fmadd_ps(r, s, _mm256_set1_ps(kP1));
  r = _mm256_fmadd_ps(r, s, _mm256_set1_ps(kP2));
  r = _mm256_fmadd_ps(r, s, _mm256_set1_ps(kP3));
  r = _mm256_fmadd_ps(r, s, _mm256_set1_ps(kP4));
  r = _mm256_fmadd_ps(r, s, _mm256_set1_ps(kP5));
  const __m256 small = _mm256_fmadd_ps(r, a, a);
  // big branch
  const __m256 tt = _mm256_mul_ps(t, t);
  __m256 q = _mm256_fmadd_ps(_mm256_set1_ps(kQ0), t, _mm256_set1_ps(kQ1));
  const __m256 u = _mm256_fmadd_ps(_mm256_set1_ps(kQ2), t, _mm256_set1_ps(kQ3));
  q = _mm256_fmadd_ps(q, tt, u);
  q = _mm256_fmadd_ps(q, t, _mm256_set1_ps(kQ4));
  q = _mm256_fmadd_ps(q, t, _mm256_set1_ps(kQ5));
  q = _mm256_fmadd_ps(q, t, _mm256_set1_ps(kQ6));
  q = _mm256_fmadd_ps(q, t, _mm256_xor_ps(t, sign));  // fma(q, t, -t)
  // exp(q)
  const __m256 j = _mm256_floor_ps(_mm256_fmadd_ps(q, _mm256_set1_ps(kLog2e), _mm256_set1_ps(0.5f)));
  __m256 f = _mm256_fmadd_ps(j, _mm256_set1_ps(-kLn2Hi), q);
  f = _mm256_fmadd_ps(j, _mm256_set1_ps(-kLn2Lo), f);
  const __m256 z = _mm256_mul_ps(f, f);
  __m256 p = _mm256_fmadd_ps(_mm256_set1_ps(kE0), f, _mm256_set1_ps(kE1));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(kE2));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(kE3));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(kE4));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(kE5));
  p = _mm256_fmadd_ps(p, z, f);
  p = _mm256_add_ps(p, _mm256_set1_ps(1.0f));
  p = _mm256_castsi256_ps(
      _mm256_add_epi32(_mm256_castps_si256(p), _mm256_slli_epi32(_mm256_cvtps_epi32(j), 23)));
  const __m256 big = _mm256_or_ps(_mm256_sub_ps(_mm256_set1_ps(1.0f), p), _mm256_and_ps(a, sign));
  const __m256 is_big = _mm256_cmp_ps(t, _mm256_set1_ps(kSplit), _CMP_GT_OQ);
  return _mm256_blendv_ps(small, big, is_big);
}

__attribute__((target("avx2,fma"))) void GeluRowAvx2(const float* x, float* y, int64_t n) {
  const __m256 c = _mm256_set1_ps(kInvSqrt2), one = _mm256_set1_ps(1.0f), half = _mm256_set1_ps(0.5f);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    const __m256 e = ErfAvx2(_mm256_mul_ps(v, c));
    _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_mul_ps(v, _mm256_add_ps(e, one)), half));
  }
  for (; i < n; ++i) y[i] = GeluScalar(x[i]);
}

__attribute__((target("avx512f"))) inline __m512 ErfAvx512(__m512 a) {
  const __m512 t = _mm512_min_ps(_mm512_set1_ps(kBig), _mm512_abs_ps(a));
  const __m512 s = _mm512_mul_ps(a, a);
  __m512 r = _mm512_set1_ps(kP0);
  r = _mm512_fmadd_ps(r, s, _mm512_set1_ps(kP1));
  r = _mm512_fmadd_ps(r, s, _mm512_set1_ps(kP2));
  r = _mm512_fmadd_ps(r, s, _mm512_set1_ps(kP3));
  r = _mm512_fmadd_ps(r, s, _mm512_set1_ps(kP4));
  r = _mm512_fmadd_ps(r, s, _mm512_set1_ps(kP5));
  const __m512 small = _mm512_fmadd_ps(r, a, a);
  const __m512 tt = _mm512_mul_ps(t, t);
  __m512 q = _mm512_fmadd_ps(_mm512_set1_ps(kQ0), t, _mm512_set1_ps(kQ1));
  const __m512 u = _mm512_fmadd_ps(_mm512_set1_ps(kQ2), t, _mm512_set1_ps(kQ3));
  q = _mm512_fmadd_ps(q, tt, u);
  q = _mm512_fmadd_ps(q, t, _mm512_set1_ps(kQ4));
  q = _mm512_fmadd_ps(q, t, _mm512_set1_ps(kQ5));
  q = _mm512_fmadd_ps(q, t, _mm512_set1_ps(kQ6));
  q = _mm512_fmadd_ps(q, t, _mm512_sub_ps(_mm512_setzero_ps(), t));
  const __m512 j = _mm512_roundscale_ps(_mm512_fmadd_ps(q, _mm512_set1_ps(kLog2e), _mm512_set1_ps(0.5f)),
                                        _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
  __m512 f = _mm512_fmadd_ps(j, _mm512_set1_ps(-kLn2Hi), q);
  f = _mm512_fmadd_ps(j, _mm512_set1_ps(-kLn2Lo), f);
  const __m512 z = _mm512_mul_ps(f, f);
  __m512 p = _mm512_fmadd_ps(_mm512_set1_ps(kE0), f, _mm512_set1_ps(kE1));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(kE2));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(kE3));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(kE4));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(kE5));
  p = _mm512_fmadd_ps(p, z, f);
  p = _mm512_add_ps(p, _mm512_set1_ps(1.0f));
  p = _mm512_castsi512_ps(
      _mm512_add_epi32(_mm512_castps_si512(p), _mm512_slli_epi32(_mm512_cvtps_epi32(j), 23)));
  const __m512 sign = _mm512_set1_ps(-0.0f);
  const __m512 mag = _mm512_sub_ps(_mm512_set1_ps(1.0f), p);
  const __m512 big = _mm512_castsi512_ps(_mm512_or_si512(
      _mm512_castps_si512(mag), _mm512_and_si512(_mm512_castps_si512(a), _mm512_castps_si512(sign))));
  const __mmask16 is_big = _mm512_cmp_ps_mask(t, _mm512_set1_ps(kSplit), _CMP_GT_OQ);
  return _mm512_mask_blend_ps(is_big, small, big);
}

__attribute__((target("avx512f"))) void GeluRowAvx512(const float* x, float* y, int64_t n) {
  const __m512 c = _mm512_set1_ps(kInvSqrt2), one = _mm512_set1_ps(1.0f), half = _mm512_set1_ps(0.5f);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 v = _mm512_loadu_ps(x + i);
    const __m512 e = ErfAvx512(_mm512_mul_ps(v, c));
    _mm512_storeu_ps(y + i, _mm512_mul_ps(_mm512_mul_ps(v, _mm512_add_ps(e, one)), half));
  }
  for (; i < n; ++i) y[i] = GeluScalar(x[i]);
}
#endif  // __x86_64__

}  // namespace

float ErfScalar(float a) {
  const float at = std::fabs(a);
  const float t = at > kBig ? kBig : at;  // NaN stays NaN (std::fmin would drop it)
  const float s = a * a;
  if (!(t > kSplit)) {  // NaN goes here and stays NaN
    float r = kP0;
    r = std::fma(r, s, kP1);
    r = std::fma(r, s, kP2);
    r = std::fma(r, s, kP3);
    r = std::fma(r, s, kP4);
    r = std::fma(r, s, kP5);
    return std::fma(r, a, a);
  }
  const float tt = t * t;
  float q = std::fma(kQ0, t, kQ1);
  const float u = std::fma(kQ2, t, kQ3);
  q = std::fma(q, tt, u);
  q = std::fma(q, t, kQ4);
  q = std::fma(q, t, kQ5);
  q = std::fma(q, t, kQ6);
  q = std::fma(q, t, -t);
  return std::copysign(1.0f - ExpNeg(q), a);
}

void GeluRow(const float* x, float* y, int64_t n, Isa isa) {
  switch (isa) {
#if defined(__x86_64__)
    case Isa::kAvx512: GeluRowAvx512(x, y, n); return;
    case Isa::kAvx2: GeluRowAvx2(x, y, n); return;
#endif
    default:
      for (int64_t i = 0; i < n; ++i) y[i] = GeluScalar(x[i]);
  }
}

}  // namespace embedrt
