// CPU kernel of ai.embedrt::AddLayerNorm (semantics in layernorm.h).
//
// Build: pip install -e .   (or: embedrt build-ops)
// Test:  python -m pytest -q tests/native/test_layernorm.py   (EMBEDRT_OPS_ISA=scalar|avx2|avx512 forces a path)
//
// One plain C++ body (layernorm_body.inc) compiled for each ISA: its loops are lane-independent (the sums
// are 16 explicit parts), so vectorising them changes no result; this file builds with -ffp-contract=off.
#include <cmath>

#include "layernorm.h"
#include "quant.h"

namespace embedrt {
namespace {

namespace scalar {
#include "layernorm_body.inc"
}  // namespace scalar

#if defined(__x86_64__)
#pragma GCC push_options
#pragma GCC target("avx2,fma")
namespace avx2 {
#include "layernorm_body.inc"
}  // namespace avx2
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f")
namespace avx512 {
#include "layernorm_body.inc"
}  // namespace avx512
#pragma GCC pop_options
#endif

}  // namespace

void AddLayerNormRows(const float* x, const float* residual, int64_t res_rows, const float* gamma, const float* beta, float eps,
                      float* y, uint8_t* q, float* scale, int qmax, int64_t row_begin, int64_t row_end,
                      int64_t N, Isa isa) {
  for (int64_t r = row_begin; r < row_end; ++r) {
    const float* xr = x + r * N;
    const float* rr = residual + (r % res_rows) * N;
    float* yr = y + r * N;
    switch (isa) {
#if defined(__x86_64__)
      case Isa::kAvx512: avx512::Row(xr, rr, gamma, beta, eps, yr, N); break;
      case Isa::kAvx2: avx2::Row(xr, rr, gamma, beta, eps, yr, N); break;
#endif
      default: scalar::Row(xr, rr, gamma, beta, eps, yr, N);
    }
    if (q != nullptr) QuantizeRows(yr, q + r * N, scale + r, 0, 1, N, isa, qmax);
  }
}

}  // namespace embedrt
