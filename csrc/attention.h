// ai.embedrt::Attention: scaled dot-product attention of one layer, per (batch, head), in one pass.
//
// Build: pip install -e .   (or: embedrt build-ops)      Test: python -m pytest -q tests/native/test_attention.py
//
//   Attention(q [B, H, S, D], k [B, H, S, D], v [B, H, S, D], bias float [B|1, H|1, S|1, S]) -> ctx [B, H, S, D]
//     attribute scale (float)
//     s[i,j]   = (sum_d q[i,d] * k[j,d]) * scale + bias[i,j]      the sum in d order, one fma per d
//     p[i,j]   = exp(s[i,j] - max_j s[i,j]) * (1 / sum_j exp(...))  (the sum in j order; exp is embedrt's, 0
//                                                                   below -87.3, where float's exp is denormal)
//     ctx[i,:] = sum_j p[i,j] * v[j,:]                              in j order, one fma per j
//   what the exported graph's MatMul, Mul, Add, Softmax, MatMul compute, without the [B, H, S, S] score and
//   probability tensors: each (batch, head) is scored row by row in a buffer that stays in L1.
//
// Every lane of every vector holds its own (i, j) or (i, d): no reduction is split across lanes, so the result
// is the same on each ISA path with FMA (AVX2, AVX-512), batch-invariant and thread-invariant.
#pragma once

#include <cstdint>

#include "mean_pool.h"  // Isa

namespace embedrt {

struct AttentionShape {
  int64_t B, H, S, D;
  // bias strides (0 where the bias broadcasts), in floats
  int64_t bias_b, bias_h, bias_i;
};

// (batch, head) blocks [bh_begin, bh_end) of b*H + h.
void AttentionBlocks(const float* q, const float* k, const float* v, const float* bias, float* ctx, float scale,
                     const AttentionShape& shape, int64_t bh_begin, int64_t bh_end, Isa isa);

}  // namespace embedrt
