// Shared declarations of the MeanPoolNormalize kernels (CPU: mean_pool_cpu.cc, CUDA: mean_pool_cuda.cu).
//
// Build: pip install -e .   (or: embedrt build-ops)      Test: python -m pytest -q tests/native
//
// Semantics, identical to sentence-transformers' Pooling (+ Normalize) and to embedrt's standard-op graph:
//   w[b,t]   = float(mask[b,t])
//   count[b] = max(sum_t w[b,t], 1e-9)                     (torch.clamp(min=1e-9))
//   mean     : out[b,h] = sum_t w[b,t] * x[b,t,h] / count[b]
//   mean_sqrt_len: the same sum divided by sqrt(count[b])
//   max      : max over t with w != 0 (-inf when the row is all padding, as the exported graph)
//   cls      : x at the first t with w != 0 (t = 0 when the row is all padding)
//   normalize: out[b,:] /= max(||out[b,:]||_2, 1e-12)       (torch.nn.functional.normalize's eps)
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace embedrt {

enum class PoolMode : int { kMean = 0, kMeanSqrtLen = 1, kMax = 2, kCls = 3 };

constexpr float kCountClamp = 1e-9f;
constexpr float kNormEps = 1e-12f;

enum class Isa : int { kScalar = 0, kAvx2 = 1, kAvx512 = 2 };

// The best kernel ISA this CPU supports (cpuid; kScalar on every other architecture).
Isa CpuIsa();
// CpuIsa, unless EMBEDRT_OPS_ISA (scalar|avx2|avx512) asks for a lower one.
Isa SelectIsa();
// cpuid feature bits, for reporting (the runtime's native.cpu_kernels): kFeat* below; 0 off x86-64.
constexpr unsigned kFeatAvx2 = 1u << 0, kFeatFma = 1u << 1, kFeatF16c = 1u << 2, kFeatAvx512f = 1u << 3,
                   kFeatAvx512bw = 1u << 4, kFeatAvx512Vnni = 1u << 5, kFeatAvxVnni = 1u << 6;
unsigned CpuFeatures();
const char* IsaName(Isa isa);

// Pools rows [row_begin, row_end) of x[B,T,H] (float32, or float16 given as raw uint16 bits) into out[B,H].
void PoolRowsF32(const float* x, const int64_t* mask, float* out, int64_t row_begin, int64_t row_end,
                 int64_t T, int64_t H, PoolMode mode, bool normalize, Isa isa);
void PoolRowsF16(const uint16_t* x, const int64_t* mask, float* out, int64_t row_begin, int64_t row_end,
                 int64_t T, int64_t H, PoolMode mode, bool normalize, Isa isa);

#ifdef EMBEDRT_WITH_CUDA
// Launches the CUDA kernel on `stream` (ORT's compute stream, non-null) on `device` (the input's ordinal; the
// caller's current device is restored). Returns "" on success, else the CUDA error's name and text.
std::string LaunchPoolCuda(const void* x, bool x_is_half, const int64_t* mask, float* out, int64_t B, int64_t T,
                           int64_t H, PoolMode mode, bool normalize, void* stream, int device);
#endif

}  // namespace embedrt
