// ai.embedrt::PackedMatMul: an fp32 Linear (x @ W + b) with W packed once, when the kernel is created.
//
// Build: pip install -e .   (or: embedrt build-ops)      Test: python -m pytest -q tests/native
//
//   PackedMatMul(x float [..., K], W float [K, N], bias float [N] optional) -> float [..., N]
//     y[r,n] = (sum_k x[r,k] * W[k,n]) (+ bias[n])     the sum in k order, one fused multiply-add per k
//   attributes (attention layouts, so that the graph needs no Reshape + Transpose around the Linear):
//     head_size = D > 0: x [B, S, K] -> y [B, N/D, S, D] (heads first: y[b,h,s,d] = y[b,s,h*D+d]); N % D == 0,
//                        D % 16 == 0
//     heads_in = 1:      x [B, H, S, D] is read as [B, S, H*D] (the attention context, heads merged back)
//
// Why: one text is M ~ 27 rows, where onnxruntime's MLAS SGEMM reaches about 60% of the machine's fp32 peak
// (benchmarks/bench_dense.py); here W is packed into 32-column panels at load time and a 14x32 AVX-512
// register tile keeps every row of the block in flight, so small M runs near peak. The result of each
// output element is a sum in k order that does not depend on M or on the thread count: batch-invariant.
#pragma once

#include <cstdint>

#include "mean_pool.h"  // Isa, SelectIsa

namespace embedrt {

constexpr int64_t kDensePanel = 32;  // columns per packed panel (two zmm registers)
constexpr int64_t kDenseRows = 14;   // rows per register tile (28 accumulators)

// Floats that PackDenseWeights writes for W [K, N]: ceil(N / 32) panels of K x 32.
int64_t PackedDenseSize(int64_t K, int64_t N);
// Whether the kernels of `isa` want each panel as two K x 16 halves one after the other (AVX2, whose tile runs
// a half at a time) rather than interleaved K x 32 rows (AVX-512, scalar). The layout changes which addresses
// are read, never the order of the sums.
inline bool DenseHalves(Isa isa) { return isa == Isa::kAvx2; }
// W [K, N] row-major -> panels (zero-padded past N), in the layout `isa`'s DenseBlock reads.
void PackDenseWeights(const float* W, int64_t K, int64_t N, float* packed, Isa isa);
// Where output row r = b*seq + s, column n goes: [M, N] row-major (head_size 0) or [B, N/D, seq, D].
struct DenseLayout {
  int64_t head_size = 0;
  int64_t seq = 1;
};

// y[rows r0..r1, panels p0..p1) of x [M, K] @ W + bias (bias may be null).
void DenseBlock(const float* x, const float* packed, const float* bias, float* y, int64_t K, int64_t N,
                int64_t r0, int64_t r1, int64_t p0, int64_t p1, const DenseLayout& layout, Isa isa);
// x [B, H, S, D] -> out [B, S, H*D].
void GatherHeads(const float* x, float* out, int64_t B, int64_t H, int64_t S, int64_t D);

}  // namespace embedrt
