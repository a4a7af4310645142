// ai.embedrt::AddLayerNorm: a residual add, LayerNormalization over the last axis and, optionally, the next
// Linear's QuantizePerToken, in one pass over each row.
//
// Build: pip install -e .   (or: embedrt build-ops)      Test: python -m pytest -q tests/native/test_layernorm.py
//
//   AddLayerNorm(x [..., N], residual [..., N] (or with leading dims 1), gamma [N], beta [N]) -> (y [..., N], q uint8 [..., N],
//                                                                       scale [..., 1])
//     attributes epsilon (float), qmax (int; 0: no quantization, q and scale are [..., 0])
//     v = x + residual;  mean = sum(v) / N;  d = v - mean;  var = sum(d * d) / N
//     y = (d * (1 / sqrt(var + epsilon))) * gamma + beta      (separate IEEE operations, no contraction)
//     q, scale = QuantizePerToken(y, qmax)                    (quant.h)
//   Both sums are taken in 16 parts (part l holds the elements n = l mod 16, in n order), then added in a
//   fixed tree: the same bits on every ISA path, independent of the batch and of the thread count.
#pragma once

#include <cstdint>

#include "mean_pool.h"  // Isa

namespace embedrt {

// Rows [row_begin, row_end): y = LayerNorm(x + residual); when q is not null, also its quantization at qmax.
// Row r adds residual row r % res_rows (a residual broadcast over the leading dims).
void AddLayerNormRows(const float* x, const float* residual, int64_t res_rows, const float* gamma, const float* beta, float eps,
                      float* y, uint8_t* q, float* scale, int qmax, int64_t row_begin, int64_t row_end,
                      int64_t N, Isa isa);

}  // namespace embedrt
