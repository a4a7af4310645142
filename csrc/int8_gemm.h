// ai.embedrt::PackedMatMulInteger: onnxruntime's MatMulInteger (u8 x s8 -> int32) with B packed once, when the
// kernel is created, for the CPUs where onnxruntime's own kernel is slow (AVX2 without AVX-512).
//
// Build: pip install -e .   (or: embedrt build-ops)      Test: python -m pytest -q tests/native/test_int8_gemm.py
//
//   PackedMatMulInteger(A uint8 [..., K], B int8 [K, N], a_zero_point uint8 scalar optional) -> int32 [..., N]
//     y[r,n] = sum_k (A[r,k] - a_zero_point) * B[k,n]          exact (int32), as MatMulInteger
//
// Why: on a 2-core AVX2 CPU (no AVX-512, no VNNI) onnxruntime's MatMulInteger reaches about 40% of the CPU's
// pmaddubsw + pmaddwd peak on a large GEMM and less at the row counts of one batch; in embedrt's int8 graph it
// was 70% of the kernel time (docs/cpu.md). Here B is packed into 16-column panels of k-quads at load time, and
// a 4 x 16 register tile does sum_k A*B with pmaddubsw (u8 x s8, pairs of products in int16), pmaddwd (pairs of
// int16 to int32) and paddd; the zero point comes off at the end as a_zero_point * sum_k B[k,n].
// pmaddubsw saturates a pair at 32,767: exact when |B[k,n]| + |B[k+1,n]| <= 128 for every even k, which the
// non-saturating int8 schemes guarantee (w7a8: |w| <= 63). The kernel checks it when it packs B and, for
// weights that could saturate, runs the portable path (exact for any int8 weights) instead.
// Integer sums are exact, so every path (scalar, AVX2) and every split of rows or columns gives the same int32s:
// the vectors do not depend on the CPU or the batch.
#pragma once

#include <cstdint>
#include <memory>

#include "mean_pool.h"  // Isa, SelectIsa

namespace embedrt {

constexpr int64_t kI8Panel = 16;  // columns per packed panel (two ymm registers of int32)

struct PackedInt8 {
  struct Free {
    void operator()(uint8_t* p) const;
  };
  std::unique_ptr<uint8_t, Free> data;  // panels x quads x 64 bytes: B[4q + j, 16p + c] at (p * quads + q) * 64 + 4c + j
  std::unique_ptr<int32_t[]> colsum;    // sum_k B[k, n], padded to whole panels
  int64_t K = 0, N = 0, quads = 0, panels = 0;
  bool pairs_fit_int16 = false;  // pmaddubsw cannot saturate with these weights
};

// B [K, N] row-major (int8) -> packed panels, column sums and the saturation check.
PackedInt8 PackInt8Weights(const int8_t* B, int64_t K, int64_t N);

// y[rows r0..r1, panels p0..p1) of (A [M, K] - zero_point) @ B, y [M, N] int32.
void Int8GemmBlock(const uint8_t* A, const PackedInt8& B, int32_t zero_point, int32_t* y, int64_t r0, int64_t r1,
                   int64_t p0, int64_t p1, Isa isa);

}  // namespace embedrt
