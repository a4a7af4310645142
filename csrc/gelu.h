// The exact (erf) GELU of the native epilogues: PackedMatMul(activation="gelu") and RequantizeRows.
//
// Build: pip install -e .   (or: embedrt build-ops)      Test: python -m pytest -q tests/native/test_gelu.py
//
//   Gelu(x) = (x * (erf(x * 0.70710677) + 1)) * 0.5     the exported graph's Div (by 1.4142135), Erf, Add, Mul,
//                                                        Mul (transformers' GELUActivation), with the division
//                                                        a multiplication, as onnxruntime's own Gelu kernel
// erf is embedrt's own, within 1 ulp of the true erf, and the same sequence of IEEE operations (fused
// multiply-adds included) on every path: scalar, AVX2 and AVX-512 give bit-identical results, so an int8
// export's GELU (and the quantization that follows it) does not depend on the CPU that serves it.
#pragma once

#include <cstdint>

#include "mean_pool.h"  // Isa

namespace embedrt {

// y[i] = Gelu(x[i]) for i < n; x and y may be the same buffer.
void GeluRow(const float* x, float* y, int64_t n, Isa isa);
// erf alone (exposed for the tests' accuracy sweep through EmbedrtErf).
float ErfScalar(float x);

}  // namespace embedrt
