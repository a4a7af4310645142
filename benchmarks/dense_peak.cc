// How close PackedMatMul's kernel (csrc/dense_cpu.cc) runs to this CPU's fp32 peak.
//
//   g++ -O3 -std=c++17 -mavx512f -pthread -Icsrc benchmarks/dense_peak.cc csrc/dense_cpu.cc -o dense_peak
//   ./dense_peak [rows]        (x86-64 with AVX-512; rows default 864, about 32 short texts)
//
// 1. The peak: 12 independent chains of AVX-512 FMAs per thread, on one thread and on two.
// 2. DenseBlock, the kernel itself, on all-MiniLM-L6-v2's Linear shapes (K x N: 384 x 384, 384 x 1536,
//    1536 x 384) with weights packed as the op packs them: one thread over the whole output, then two threads
//    taking the op's tasks (row chunks of 4 tiles x 4 column groups) from a shared counter. Best of 30 runs.
#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

#include "dense.h"

using namespace embedrt;
using Clock = std::chrono::steady_clock;

__attribute__((target("avx512f"))) static double FmaPeak() {
  __m512 a[12];
  for (int i = 0; i < 12; ++i) a[i] = _mm512_set1_ps(1.0f + i * 1e-3f);
  const __m512 b = _mm512_set1_ps(0.9999f), c = _mm512_set1_ps(1e-7f);
  const int64_t n = 50000000;
  const auto t0 = Clock::now();
  for (int64_t k = 0; k < n; ++k)
    for (int i = 0; i < 12; ++i) a[i] = _mm512_fmadd_ps(a[i], b, c);
  const double s = std::chrono::duration<double>(Clock::now() - t0).count();
  float sink = 0;
  for (int i = 0; i < 12; ++i) sink += _mm512_reduce_add_ps(a[i]);
  if (sink == 12345.f) std::printf(" ");  // NOTE: keeps the chains alive
  return n * 12.0 * 16 * 2 / s / 1e9;
}

static double Dense(int64_t M, int64_t K, int64_t N, int threads) {
  std::vector<float> x(M * K), W(K * N), b(N), y(M * N);
  for (auto& v : x) v = (std::rand() % 1000) / 1000.f - 0.5f;
  for (auto& v : W) v = (std::rand() % 1000) / 1000.f - 0.5f;
  std::vector<float> storage(PackedDenseSize(K, N) + 16);
  float* packed = storage.data();
  while (reinterpret_cast<uintptr_t>(packed) % 64) ++packed;
  PackDenseWeights(W.data(), K, N, packed, Isa::kAvx512);
  const DenseLayout layout;
  const int64_t panels = (N + kDensePanel - 1) / kDensePanel;
  const int64_t groups = std::min<int64_t>(panels, 4), per_group = (panels + groups - 1) / groups;
  const int64_t chunks = (M + 4 * kDenseRows - 1) / (4 * kDenseRows), rows = (M + chunks - 1) / chunks;
  const int64_t tasks = chunks * ((panels + per_group - 1) / per_group);
  double best = 1e30;
  for (int rep = 0; rep < 30; ++rep) {
    std::atomic<int64_t> next{0};
    auto work = [&]() {
      for (int64_t t; (t = next.fetch_add(1)) < tasks;) {
        const int64_t g = t % groups, r0 = t / groups * rows, p0 = g * per_group;
        DenseBlock(x.data(), packed, b.data(), y.data(), K, N, r0, std::min(r0 + rows, M), p0,
                   std::min(p0 + per_group, panels), layout, Isa::kAvx512);
      }
    };
    const auto t0 = Clock::now();
    if (threads == 1) {
      DenseBlock(x.data(), packed, b.data(), y.data(), K, N, 0, M, 0, panels, layout, Isa::kAvx512);
    } else {
      std::vector<std::thread> pool;
      for (int i = 1; i < threads; ++i) pool.emplace_back(work);
      work();
      for (auto& th : pool) th.join();
    }
    best = std::min(best, std::chrono::duration<double>(Clock::now() - t0).count());
  }
  return 2.0 * M * K * N / best / 1e9;
}

int main(int argc, char** argv) {
  const int64_t M = argc > 1 ? std::atoll(argv[1]) : 864;
  const double one = FmaPeak();
  double theirs = 0;
  std::thread other([&]() { theirs = FmaPeak(); });
  const double mine = FmaPeak();
  other.join();
  const double both = mine + theirs;
  std::printf("FMA peak: %.1f GFLOP/s on one thread, %.1f on two\n", one, both);
  const int64_t shapes[3][2] = {{384, 384}, {384, 1536}, {1536, 384}};
  for (const auto& s : shapes) {
    const double d1 = Dense(M, s[0], s[1], 1), d2 = Dense(M, s[0], s[1], 2);
    std::printf("DenseBlock %ld x %ld x %ld: %.1f GFLOP/s on one thread (%.0f%% of its peak), %.1f on two (%.0f%%)\n",
                static_cast<long>(M), static_cast<long>(s[0]), static_cast<long>(s[1]), d1, 100 * d1 / one, d2,
                100 * d2 / both);
  }
  return 0;
}
