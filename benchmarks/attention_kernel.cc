// ai.embedrt::Attention's CPU kernel (csrc/attention_cpu.cc) alone, on one thread: all-MiniLM-L6-v2's 12
// heads of 32 dims, one text of S tokens, best of 30 runs.
//
//   g++ -O3 -std=c++17 -Icsrc benchmarks/attention_kernel.cc csrc/attention_cpu.cc csrc/mean_pool_cpu.cc -o ak
//   ./ak [avx2|avx512|scalar] [S ...]        (default: avx2, S = 32 128 256 512)
//
// GFLOP/s counts the two matmuls' multiply-adds (4 S^2 D per head), not the softmax: the gap to the FMA
// peak (benchmarks/avx2_peak.cc, benchmarks/dense_peak.cc) is the softmax's, the K transpose's and the loops'.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "attention.h"

using namespace embedrt;

int main(int argc, char** argv) {
  Isa isa = Isa::kAvx2;
  int first = 1;
  if (argc > 1 && std::strcmp(argv[1], "avx512") == 0) isa = Isa::kAvx512, first = 2;
  else if (argc > 1 && std::strcmp(argv[1], "scalar") == 0) isa = Isa::kScalar, first = 2;
  else if (argc > 1 && std::strcmp(argv[1], "avx2") == 0) first = 2;
  if (static_cast<int>(isa) > static_cast<int>(CpuIsa())) {
    std::fprintf(stderr, "ak: this CPU has no %s\n", argv[1]);
    return 2;
  }
  std::vector<int> lengths;
  for (int i = first; i < argc; ++i) lengths.push_back(std::atoi(argv[i]));
  if (lengths.empty()) lengths = {32, 128, 256, 512};
  const int64_t B = 1, H = 12, D = 32;
  for (const int S : lengths) {
    std::vector<float> q(B * H * S * D), k(q.size()), v(q.size()), ctx(q.size()), bias(B * S, 0.0f);
    std::srand(1);
    for (auto* x : {&q, &k, &v})
      for (auto& f : *x) f = (std::rand() / static_cast<float>(RAND_MAX) - 0.5f) * 2.0f;
    const AttentionShape shape{B, H, S, D, S, 0, 0};
    double best = 1e30;
    for (int r = 0; r < 30; ++r) {
      const auto t0 = std::chrono::steady_clock::now();
      AttentionBlocks(q.data(), k.data(), v.data(), bias.data(), ctx.data(), 0.17677669f, shape, 0, B * H, isa);
      best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    const double flops = 4.0 * B * H * S * S * D;
    std::printf("S=%d: %.3f ms, %.1f GFLOP/s of matmul products (checksum %.6f)\n", S, best * 1e3,
                flops / best / 1e9, ctx[123]);
  }
  return 0;
}
