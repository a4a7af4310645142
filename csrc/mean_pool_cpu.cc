// CPU kernel of ai.embedrt::MeanPoolNormalize: one pass over the token embeddings, fp32 accumulation,
// AVX-512 / AVX2 (+F16C, FMA) / scalar dispatched at run time, rows spread over ORT's intra-op thread pool.
//
// Build: pip install -e .   (or: embedrt build-ops)
// Test:  python -m pytest -q tests/native            (EMBEDRT_OPS_ISA=scalar|avx2|avx512 forces a path)
//
// Arithmetic for one batch, x[B,T,H] with n = B*T*H elements:
//   bytes read  = n * sizeof(x) + B*T*8 (mask),  bytes written = B*H*4
//   FLOPs       = 2n (multiply-add per element) + ~4*B*H (divide, square, sum, scale)
//   => 0.5 FLOP/byte (fp32): memory-bound. all-MiniLM-L6-v2, B=32, T=128, H=384: 6.3 MB read, 3.1 MFLOP,
//   ~0.3 ms at 20 GB/s (less when it sits in cache), against ~180 ms for the whole encode of such a batch on
//   the 2-core CPU it was written on (benchmarks/bench_native_pool.py). The standard-op chain
//   (Cast, Unsqueeze, Mul, ReduceSum x2, Clip, Div, ReduceL2, Clip, Div) writes and re-reads a B*T*H
//   temporary for the Mul, so it moves about 3x the bytes.
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>

#include "mean_pool.h"

namespace embedrt {
namespace {

// ---------------------------------------------------------------- fp16 -> fp32 without F16C (scalar path)
inline float HalfToFloat(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1Fu;
  uint32_t man = h & 0x3FFu;
  uint32_t bits;
  if (exp == 0) {
    if (man == 0) {
      bits = sign;
    } else {  // subnormal: renormalise
      exp = 127 - 15 + 1;
      while ((man & 0x400u) == 0) {
        man <<= 1;
        --exp;
      }
      man &= 0x3FFu;
      bits = sign | (exp << 23) | (man << 13);
    }
  } else if (exp == 0x1F) {
    bits = sign | 0x7F800000u | (man << 13);  // inf / nan
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
  }
  float f;
  std::memcpy(&f, &bits, sizeof(f));
  return f;
}

inline float Load(const float* p, int64_t i) { return p[i]; }
inline float Load(const uint16_t* p, int64_t i) { return HalfToFloat(p[i]); }

// ---------------------------------------------------------------- acc += w * x  and  acc = max(acc, x)
template <typename T>
void AxpyScalar(float* acc, float w, const T* x, int64_t H) {
  for (int64_t h = 0; h < H; ++h) acc[h] += w * Load(x, h);
}
template <typename T>
void MaxScalar(float* acc, const T* x, int64_t H) {
  for (int64_t h = 0; h < H; ++h) acc[h] = std::fmax(acc[h], Load(x, h));
}

#if defined(__x86_64__)
__attribute__((target("avx2,fma,f16c"))) void AxpyAvx2(float* acc, float w, const float* x, int64_t H) {
  const __m256 vw = _mm256_set1_ps(w);
  int64_t h = 0;
  for (; h + 8 <= H; h += 8)
    _mm256_storeu_ps(acc + h, _mm256_fmadd_ps(vw, _mm256_loadu_ps(x + h), _mm256_loadu_ps(acc + h)));
  for (; h < H; ++h) acc[h] += w * x[h];
}
__attribute__((target("avx2,fma,f16c"))) void AxpyAvx2(float* acc, float w, const uint16_t* x, int64_t H) {
  const __m256 vw = _mm256_set1_ps(w);
  int64_t h = 0;
  for (; h + 8 <= H; h += 8) {
    const __m256 v = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x + h)));
    _mm256_storeu_ps(acc + h, _mm256_fmadd_ps(vw, v, _mm256_loadu_ps(acc + h)));
  }
  for (; h < H; ++h) acc[h] += w * HalfToFloat(x[h]);
}
__attribute__((target("avx2,fma,f16c"))) void MaxAvx2(float* acc, const float* x, int64_t H) {
  int64_t h = 0;
  for (; h + 8 <= H; h += 8) _mm256_storeu_ps(acc + h, _mm256_max_ps(_mm256_loadu_ps(acc + h), _mm256_loadu_ps(x + h)));
  for (; h < H; ++h) acc[h] = std::fmax(acc[h], x[h]);
}
__attribute__((target("avx2,fma,f16c"))) void MaxAvx2(float* acc, const uint16_t* x, int64_t H) {
  int64_t h = 0;
  for (; h + 8 <= H; h += 8) {
    const __m256 v = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x + h)));
    _mm256_storeu_ps(acc + h, _mm256_max_ps(_mm256_loadu_ps(acc + h), v));
  }
  for (; h < H; ++h) acc[h] = std::fmax(acc[h], HalfToFloat(x[h]));
}

__attribute__((target("avx512f"))) void AxpyAvx512(float* acc, float w, const float* x, int64_t H) {
  const __m512 vw = _mm512_set1_ps(w);
  int64_t h = 0;
  for (; h + 16 <= H; h += 16)
    _mm512_storeu_ps(acc + h, _mm512_fmadd_ps(vw, _mm512_loadu_ps(x + h), _mm512_loadu_ps(acc + h)));
  if (h < H) {  // masked tail: no scalar loop
    const __mmask16 m = static_cast<__mmask16>((1u << (H - h)) - 1u);
    _mm512_mask_storeu_ps(acc + h, m, _mm512_fmadd_ps(vw, _mm512_maskz_loadu_ps(m, x + h), _mm512_maskz_loadu_ps(m, acc + h)));
  }
}
__attribute__((target("avx512f"))) void AxpyAvx512(float* acc, float w, const uint16_t* x, int64_t H) {
  const __m512 vw = _mm512_set1_ps(w);
  int64_t h = 0;
  for (; h + 16 <= H; h += 16) {
    const __m512 v = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + h)));
    _mm512_storeu_ps(acc + h, _mm512_fmadd_ps(vw, v, _mm512_loadu_ps(acc + h)));
  }
  for (; h < H; ++h) acc[h] += w * HalfToFloat(x[h]);
}
__attribute__((target("avx512f"))) void MaxAvx512(float* acc, const float* x, int64_t H) {
  int64_t h = 0;
  for (; h + 16 <= H; h += 16) _mm512_storeu_ps(acc + h, _mm512_max_ps(_mm512_loadu_ps(acc + h), _mm512_loadu_ps(x + h)));
  for (; h < H; ++h) acc[h] = std::fmax(acc[h], x[h]);
}
__attribute__((target("avx512f"))) void MaxAvx512(float* acc, const uint16_t* x, int64_t H) {
  int64_t h = 0;
  for (; h + 16 <= H; h += 16) {
    const __m512 v = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + h)));
    _mm512_storeu_ps(acc + h, _mm512_max_ps(_mm512_loadu_ps(acc + h), v));
  }
  for (; h < H; ++h) acc[h] = std::fmax(acc[h], HalfToFloat(x[h]));
}

#endif  // __x86_64__

template <typename T>
struct Kernels {
  void (*axpy)(float*, float, const T*, int64_t);
  void (*vmax)(float*, const T*, int64_t);
};

template <typename T>
Kernels<T> KernelsFor(Isa isa) {
  switch (isa) {
#if defined(__x86_64__)
    case Isa::kAvx512: return {static_cast<void (*)(float*, float, const T*, int64_t)>(AxpyAvx512),
                               static_cast<void (*)(float*, const T*, int64_t)>(MaxAvx512)};
    case Isa::kAvx2: return {static_cast<void (*)(float*, float, const T*, int64_t)>(AxpyAvx2),
                             static_cast<void (*)(float*, const T*, int64_t)>(MaxAvx2)};
#endif
    default: return {AxpyScalar<T>, MaxScalar<T>};
  }
}

template <typename T>
void PoolRows(const T* x, const int64_t* mask, float* out, int64_t row_begin, int64_t row_end, int64_t T_len,
              int64_t H, PoolMode mode, bool normalize, Isa isa) {
  const Kernels<T> k = KernelsFor<T>(isa);
  for (int64_t b = row_begin; b < row_end; ++b) {
    float* acc = out + b * H;  // NOTE: the output row is the accumulator: no scratch, no B*T*H temporary
    const int64_t* m = mask + b * T_len;
    const T* xb = x + b * T_len * H;
    if (mode == PoolMode::kMean || mode == PoolMode::kMeanSqrtLen) {
      std::memset(acc, 0, sizeof(float) * H);
      float count = 0.f;
      for (int64_t t = 0; t < T_len; ++t) {
        const float w = static_cast<float>(m[t]);  // NOTE: weight by the mask value, as the graph's Mul does
        if (w == 0.f) continue;
        count += w;
        k.axpy(acc, w, xb + t * H, H);
      }
      count = std::fmax(count, kCountClamp);
      const float d = mode == PoolMode::kMean ? count : std::sqrt(count);
      for (int64_t h = 0; h < H; ++h) acc[h] /= d;  // NOTE: divide, not multiply by 1/d: same rounding as Div
    } else if (mode == PoolMode::kMax) {
      for (int64_t h = 0; h < H; ++h) acc[h] = -std::numeric_limits<float>::infinity();
      for (int64_t t = 0; t < T_len; ++t)
        if (m[t] != 0) k.vmax(acc, xb + t * H, H);
    } else {  // kCls
      int64_t first = 0;
      while (first < T_len && m[first] == 0) ++first;
      if (first == T_len) first = 0;  // all padding: argmax of an all-zero mask is 0
      const T* row = xb + first * H;
      for (int64_t h = 0; h < H; ++h) acc[h] = Load(row, h);
    }
    if (normalize) {
      double ss = 0.0;  // NOTE: fp64 sum of squares: H terms, negligible cost, no overflow for large H
      for (int64_t h = 0; h < H; ++h) ss += static_cast<double>(acc[h]) * acc[h];
      const float norm = std::fmax(static_cast<float>(std::sqrt(ss)), kNormEps);
      for (int64_t h = 0; h < H; ++h) acc[h] /= norm;
    }
  }
}

}  // namespace

Isa CpuIsa() {
  Isa best = Isa::kScalar;
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) {
    best = Isa::kAvx512;
  } else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c")) {
    best = Isa::kAvx2;
  }
#endif
  return best;
}

unsigned CpuFeatures() {
  unsigned bits = 0;
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2")) bits |= kFeatAvx2;
  if (__builtin_cpu_supports("fma")) bits |= kFeatFma;
  if (__builtin_cpu_supports("f16c")) bits |= kFeatF16c;
  if (__builtin_cpu_supports("avx512f")) bits |= kFeatAvx512f;
  if (__builtin_cpu_supports("avx512bw")) bits |= kFeatAvx512bw;
  if (__builtin_cpu_supports("avx512vnni")) bits |= kFeatAvx512Vnni;
  if (__builtin_cpu_supports("avxvnni")) bits |= kFeatAvxVnni;
#endif
  return bits;
}

Isa SelectIsa() {
  Isa best = CpuIsa();
  const char* want = std::getenv("EMBEDRT_OPS_ISA");
  if (want != nullptr) {
    Isa asked = best;
    if (std::strcmp(want, "scalar") == 0) asked = Isa::kScalar;
    else if (std::strcmp(want, "avx2") == 0) asked = Isa::kAvx2;
    else if (std::strcmp(want, "avx512") == 0) asked = Isa::kAvx512;
    if (static_cast<int>(asked) < static_cast<int>(best)) best = asked;  // never above what the CPU has
  }
  return best;
}

const char* IsaName(Isa isa) {
  switch (isa) {
    case Isa::kAvx512: return "avx512";
    case Isa::kAvx2: return "avx2";
    default: return "scalar";
  }
}

void PoolRowsF32(const float* x, const int64_t* mask, float* out, int64_t row_begin, int64_t row_end, int64_t T,
                 int64_t H, PoolMode mode, bool normalize, Isa isa) {
  PoolRows<float>(x, mask, out, row_begin, row_end, T, H, mode, normalize, isa);
}

void PoolRowsF16(const uint16_t* x, const int64_t* mask, float* out, int64_t row_begin, int64_t row_end, int64_t T,
                 int64_t H, PoolMode mode, bool normalize, Isa isa) {
  PoolRows<uint16_t>(x, mask, out, row_begin, row_end, T, H, mode, normalize, isa);
}

}  // namespace embedrt
