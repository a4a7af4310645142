// CPU kernels of ai.embedrt::QuantizePerToken and ai.embedrt::DequantizeRows (semantics in quant.h).
//
// Build: pip install -e .   (or: embedrt build-ops)
// Test:  python -m pytest -q tests/native            (EMBEDRT_OPS_ISA=scalar|avx2|avx512 forces a path)
//
// Why: in the standard-op int8 graph each quantized Linear group costs eight elementwise ops on the input
// (Abs, ReduceMax, Max, Div, Div, Round, Add, Cast) and three on the output (Cast, Mul, Mul), each a pass over
// memory with its own temporary; on all-MiniLM-L6-v2 they took about 40% of the int8 graph's kernel time
// (benchmarks/profile_ops.py). Here the input is read twice (absmax, then quantize, the row still in L1) and
// the output once. Bytes per row of K floats: read 4K (twice, from cache the second time), write K + 4.
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include <cmath>

#include "quant.h"

namespace embedrt {
namespace {

// NOTE: the order of float operations matches the standard-op chain exactly (x / scale, not x * (1/scale);
// round half to even; + 128 in float; scale = max(amax, eps) / 127), so the bytes are identical.
// The row's scale from its absmax, as the standard graph computes it (Max with eps, then Div by 127).
inline float RowScale(float amax, float qmax) { return std::fmax(amax, kQuantEps) / qmax; }

// absmax of the lanes of a vector register, then of the scalar tail x[k..K).
inline float AbsMax(const float* lanes, int n, const float* x, int64_t k, int64_t K) {
  float amax = 0.0f;
  for (int i = 0; i < n; ++i) amax = std::fmax(amax, lanes[i]);
  for (; k < K; ++k) amax = std::fmax(amax, std::fabs(x[k]));
  return amax;
}

inline uint8_t QuantizeOne(float x, float scale, float offset) {
  const float r = std::nearbyint(x / scale) + offset;
  return static_cast<uint8_t>(static_cast<int32_t>(r));
}

void QuantizeRowScalar(const float* x, uint8_t* q, float* scale, int64_t K, float qmax) {
  const float s = RowScale(AbsMax(nullptr, 0, x, 0, K), qmax), offset = qmax + 1.0f;
  *scale = s;
  for (int64_t k = 0; k < K; ++k) q[k] = QuantizeOne(x[k], s, offset);
}

#if defined(__x86_64__)
// x[0..8) quantized, as int32 lanes: integers in [1, 2 * qmax + 1] <= 255, so the unsigned saturating narrows
// of QuantizeRowAvx2 never saturate and its bytes equal a plain cast
__attribute__((target("avx2,fma"))) inline __m256i QuantizedLanesAvx2(const float* x, __m256 vs, __m256 off) {
  return _mm256_cvtps_epi32(_mm256_add_ps(
      _mm256_round_ps(_mm256_div_ps(_mm256_loadu_ps(x), vs), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), off));
}

__attribute__((target("avx2,fma"))) void QuantizeRowAvx2(const float* x, uint8_t* q, float* scale, int64_t K,
                                                         float qmax) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  __m256 vmax = _mm256_setzero_ps();
  int64_t k = 0;
  for (; k + 8 <= K; k += 8) vmax = _mm256_max_ps(vmax, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + k)));
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, vmax);
  const float s = RowScale(AbsMax(lanes, 8, x, k, K), qmax), offset = qmax + 1.0f;
  *scale = s;
  const __m256 vs = _mm256_set1_ps(s), off = _mm256_set1_ps(offset);
  // NOTE: narrowed in registers, 32 at a time: a scalar store per byte cost more than the division
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);  // undo the packs' per-lane interleave
  for (k = 0; k + 32 <= K; k += 32) {
    const __m256i a = QuantizedLanesAvx2(x + k, vs, off), b = QuantizedLanesAvx2(x + k + 8, vs, off);
    const __m256i c = QuantizedLanesAvx2(x + k + 16, vs, off), d = QuantizedLanesAvx2(x + k + 24, vs, off);
    const __m256i bytes = _mm256_packus_epi16(_mm256_packus_epi32(a, b), _mm256_packus_epi32(c, d));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + k), _mm256_permutevar8x32_epi32(bytes, order));
  }
  for (; k + 8 <= K; k += 8) {
    // u16 lanes v0..3 0 | v4..7 0, then bytes v0..3 | v4..7 at the bottom of each 128-bit lane
    const __m256i w = _mm256_packus_epi32(QuantizedLanesAvx2(x + k, vs, off), _mm256_setzero_si256());
    const __m256i b = _mm256_packus_epi16(w, w);
    _mm_storel_epi64(reinterpret_cast<__m128i*>(q + k),
                     _mm_unpacklo_epi32(_mm256_castsi256_si128(b), _mm256_extracti128_si256(b, 1)));
  }
  for (; k < K; ++k) q[k] = QuantizeOne(x[k], s, offset);
}

__attribute__((target("avx512f"))) void QuantizeRowAvx512(const float* x, uint8_t* q, float* scale, int64_t K,
                                                          float qmax) {
  __m512 vmax = _mm512_setzero_ps();
  int64_t k = 0;
  for (; k + 16 <= K; k += 16) vmax = _mm512_max_ps(vmax, _mm512_abs_ps(_mm512_loadu_ps(x + k)));
  // NOTE: not _mm512_reduce_max_ps: GCC 12's version of it trips -Wuninitialized inside avx512fintrin.h.
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, vmax);
  const float s = RowScale(AbsMax(lanes, 16, x, k, K), qmax), offset = qmax + 1.0f;
  *scale = s;
  const __m512 vs = _mm512_set1_ps(s), off = _mm512_set1_ps(offset);
  for (k = 0; k + 16 <= K; k += 16) {
    const __m512 r = _mm512_add_ps(
        _mm512_roundscale_ps(_mm512_div_ps(_mm512_loadu_ps(x + k), vs), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC),
        off);
    // values are integers in [1, 2 * qmax + 1] <= 255: the conversion is exact and the saturating narrow never
    // saturates
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + k), _mm512_cvtusepi32_epi8(_mm512_cvtps_epi32(r)));
  }
  for (; k < K; ++k) q[k] = QuantizeOne(x[k], s, offset);
}

#endif  // __x86_64__

void DequantizeRowScalar(const int32_t* acc, float rs, const float* cs, const float* b, float* y, int64_t N) {
  for (int64_t n = 0; n < N; ++n) y[n] = (static_cast<float>(acc[n]) * cs[n]) * rs;
  if (b != nullptr)
    for (int64_t n = 0; n < N; ++n) y[n] += b[n];
}

#if defined(__x86_64__)
// NOTE: the bias is added after both multiplications, unfused (mul then add, no FMA), as the Add node did.
__attribute__((target("avx2,fma"))) void DequantizeRowAvx2(const int32_t* acc, float rs, const float* cs,
                                                          const float* b, float* y, int64_t N) {
  const __m256 vr = _mm256_set1_ps(rs);
  int64_t n = 0;
  for (; n + 8 <= N; n += 8) {
    const __m256 a = _mm256_cvtepi32_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(acc + n)));
    __m256 v = _mm256_mul_ps(_mm256_mul_ps(a, _mm256_loadu_ps(cs + n)), vr);
    if (b != nullptr) v = _mm256_add_ps(v, _mm256_loadu_ps(b + n));
    _mm256_storeu_ps(y + n, v);
  }
  for (; n < N; ++n) y[n] = (static_cast<float>(acc[n]) * cs[n]) * rs + (b != nullptr ? b[n] : 0.0f);
}

__attribute__((target("avx512f"))) void DequantizeRowAvx512(const int32_t* acc, float rs, const float* cs,
                                                           const float* b, float* y, int64_t N) {
  const __m512 vr = _mm512_set1_ps(rs);
  int64_t n = 0;
  for (; n + 16 <= N; n += 16) {
    const __m512 a = _mm512_cvtepi32_ps(_mm512_loadu_si512(acc + n));
    __m512 v = _mm512_mul_ps(_mm512_mul_ps(a, _mm512_loadu_ps(cs + n)), vr);
    if (b != nullptr) v = _mm512_add_ps(v, _mm512_loadu_ps(b + n));
    _mm512_storeu_ps(y + n, v);
  }
  for (; n < N; ++n) y[n] = (static_cast<float>(acc[n]) * cs[n]) * rs + (b != nullptr ? b[n] : 0.0f);
}

#endif  // __x86_64__

}  // namespace

void QuantizeRows(const float* x, uint8_t* q, float* scale, int64_t row_begin, int64_t row_end, int64_t K, Isa isa,
                  int qmax) {
  const float qm = static_cast<float>(qmax);
  for (int64_t r = row_begin; r < row_end; ++r) {
    const float* xr = x + r * K;
    uint8_t* qr = q + r * K;
    switch (isa) {
#if defined(__x86_64__)
      case Isa::kAvx512: QuantizeRowAvx512(xr, qr, scale + r, K, qm); break;
      case Isa::kAvx2: QuantizeRowAvx2(xr, qr, scale + r, K, qm); break;
#endif
      default: QuantizeRowScalar(xr, qr, scale + r, K, qm);
    }
  }
}

void DequantizeRows(const int32_t* acc, const float* row_scale, const float* col_scale, const float* bias, float* y,
                    int64_t row_begin, int64_t row_end, int64_t N, Isa isa) {
  for (int64_t r = row_begin; r < row_end; ++r) {
    switch (isa) {
#if defined(__x86_64__)
      case Isa::kAvx512: DequantizeRowAvx512(acc + r * N, row_scale[r], col_scale, bias, y + r * N, N); break;
      case Isa::kAvx2: DequantizeRowAvx2(acc + r * N, row_scale[r], col_scale, bias, y + r * N, N); break;
#endif
      default: DequantizeRowScalar(acc + r * N, row_scale[r], col_scale, bias, y + r * N, N);
    }
  }
}

}  // namespace embedrt
