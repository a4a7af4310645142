// Shared declarations of the per-token int8 kernels (quant_cpu.cc), used by the int8 variant's native graph.
//
// Build: pip install -e .   (or: embedrt build-ops)      Test: python -m pytest -q tests/native
//
// They replace the standard-op chains that embedrt's int8 graph (export/quantize.py) builds around every
// MatMulInteger, with the same float operations in the same order, so the outputs are bit-identical:
//
//   QuantizePerToken(x float [..., K]) -> (q uint8 [..., K], scale float [..., 1])
//     attribute qmax = Q in [1, 127] (default 127: 8-bit activations; 63: the 7-bit ones of scheme w8a7)
//     scale[r] = max(max_k |x[r,k]|, 1e-12) / Q                            (Abs, ReduceMax, Max, Div)
//     q[r,k]   = uint8(round_half_even(x[r,k] / scale[r]) + (Q + 1))        (Div, Round, Add, Cast)
//   DequantizeRows(acc int32 [..., N], row_scale float [..., 1], col_scale float [N], bias float [N] optional)
//     -> float [..., N]
//     y[r,n]   = (float(acc[r,n]) * col_scale[n]) * row_scale[r] (+ bias[n])   (Cast, Mul, Mul, the Linear's Add)
#pragma once

#include <cstdint>

#include "mean_pool.h"  // Isa, SelectIsa

namespace embedrt {

constexpr float kQuantEps = 1e-12f;
constexpr int kQuantMax = 127;  // the default qmax

// Rows [row_begin, row_end) of x[rows, K], at qmax (1..127).
void QuantizeRows(const float* x, uint8_t* q, float* scale, int64_t row_begin, int64_t row_end, int64_t K,
                  Isa isa, int qmax = kQuantMax);
// bias may be null.
void DequantizeRows(const int32_t* acc, const float* row_scale, const float* col_scale, const float* bias, float* y,
                    int64_t row_begin, int64_t row_end, int64_t N, Isa isa);

}  // namespace embedrt
