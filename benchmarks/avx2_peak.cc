// This CPU's AVX2 peaks: fp32 FMAs, and the int8 products of the AVX2 integer GEMM (pmaddubsw + pmaddwd +
// paddd per 32 u8 x s8 products, csrc/int8_gemm_cpu.cc), on one thread and on two.
//
//   g++ -O3 -std=c++17 -mavx2 -mfma -pthread benchmarks/avx2_peak.cc -o avx2_peak && ./avx2_peak
//
// Eight independent accumulator chains per thread (enough to cover the latencies), operands kept in
// registers; best of 5 runs. FLOP and OP count a multiply-add as two.
#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

#define KEEP(x) asm volatile("" : "+x"(x))

namespace {

constexpr long kIters = 50'000'000;

float FmaChains() {
  __m256 a[8], acc[8];
  for (int i = 0; i < 8; ++i) a[i] = _mm256_set1_ps(1.0f + i * 1e-3f), acc[i] = _mm256_setzero_ps();
  __m256 b = _mm256_set1_ps(0.999999f);
  for (long n = 0; n < kIters; ++n) {
    KEEP(b);  // NOTE: a fresh operand every step, so that the compiler cannot hoist the products
    for (int i = 0; i < 8; ++i) acc[i] = _mm256_fmadd_ps(a[i], b, acc[i]);
  }
  float s = 0.0f, t[8];
  for (int i = 0; i < 8; ++i) _mm256_storeu_ps(t, acc[i]), s += t[0];
  return s;
}

float Int8Chains() {
  __m256i a[8], acc[8];
  for (int i = 0; i < 8; ++i) a[i] = _mm256_set1_epi8(static_cast<char>(i)), acc[i] = _mm256_setzero_si256();
  __m256i b = _mm256_set1_epi8(3);
  const __m256i ones = _mm256_set1_epi16(1);
  for (long n = 0; n < kIters; ++n) {
    KEEP(b);
    for (int i = 0; i < 8; ++i)
      acc[i] = _mm256_add_epi32(acc[i], _mm256_madd_epi16(_mm256_maddubs_epi16(a[i], b), ones));
  }
  int s = 0, t[8];
  for (int i = 0; i < 8; ++i) _mm256_storeu_si256(reinterpret_cast<__m256i*>(t), acc[i]), s += t[0];
  return static_cast<float>(s);
}

double Rate(float (*chains)(), int threads, double ops_per_step) {
  double best = 1e30;
  for (int rep = 0; rep < 5; ++rep) {
    std::vector<std::thread> pool;
    std::vector<float> sink(threads);
    const auto t0 = std::chrono::steady_clock::now();
    for (int t = 0; t < threads; ++t) pool.emplace_back([&, t] { sink[t] = chains(); });
    for (auto& t : pool) t.join();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    if (sink[0] == 12345.0f) std::printf(" ");
  }
  return threads * kIters * ops_per_step / best / 1e9;
}

}  // namespace

int main() {
  for (int threads : {1, 2}) {
    // per step: 8 FMAs of 8 lanes (2 FLOP each); 8 x 32 u8 x s8 products (2 OP each)
    const double fma = Rate(FmaChains, threads, 8 * 8 * 2.0);
    const double int8 = Rate(Int8Chains, threads, 8 * 32 * 2.0);
    std::printf("%d thread(s): fp32 FMA %.1f GFLOP/s, int8 pmaddubsw+pmaddwd+paddd %.1f GOP/s (%.2fx)\n",
                threads, fma, int8, int8 / fma);
  }
  return 0;
}
