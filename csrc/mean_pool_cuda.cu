// CUDA kernel of ai.embedrt::MeanPoolNormalize: one block per sentence, fp32 accumulation, warp-shuffle
// reductions, launched on ORT's compute stream on the input's device. Compiled when nvcc is present; it has
// NOT been run in this repository (no GPU); benchmarks/gpu_check.py tier A checks it on one.
//
// Build: EMBEDRT_CUDA=ON pip install -e .   (or: embedrt build-ops --cuda on)
// Test:  python -m pytest -q tests/native -k cuda      (compile test here; -m gpu tests need a GPU)
//        python benchmarks/gpu_check.py --tiers A        (against the CPU kernel, under compute-sanitizer)
//
// Arithmetic, x[B,T,H] with n = B*T*H elements:
//   bytes read = n * sizeof(x) + B*T*8, written = B*H*4; FLOPs = 2n + ~4*B*H  => 0.5 FLOP/byte in fp32,
//   1 FLOP/byte in fp16, far below any GPU's ridge point (~100+ FLOP/byte): memory-bound. all-MiniLM-L6-v2,
//   B=32, T=128, H=384, fp16: 3.1 MB, ~1 us of HBM time on an H100 (3.35 TB/s), one launch instead of ~10.
// Layout: block b owns sentence b; thread i owns columns h = i, i + blockDim, ... so that a warp reads 32
// consecutive elements of a token row (coalesced). The mask row is staged in shared memory in tiles.
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "mean_pool.h"

namespace embedrt {
namespace {

constexpr int kThreads = 256;
constexpr int kMaskTile = 1024;

__device__ __forceinline__ float ToFloat(float v) { return v; }
__device__ __forceinline__ float ToFloat(__half v) { return __half2float(v); }

__device__ __forceinline__ float WarpSum(float v) {
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

// Sum of v over the block; every thread gets the result. `scratch` holds one float per warp.
__device__ float BlockSum(float v, float* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
  v = WarpSum(v);
  __syncthreads();  // scratch may still be read by a previous BlockSum
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < warps ? scratch[lane] : 0.f;
  return WarpSum(v);
}

template <typename T>
__global__ void PoolKernel(const T* __restrict__ x, const int64_t* __restrict__ mask, float* __restrict__ out,
                           int64_t T_len, int64_t H, int mode, int normalize) {
  __shared__ float w_tile[kMaskTile];
  __shared__ float scratch[32];
  const int64_t b = blockIdx.x;
  const int64_t* m = mask + b * T_len;
  const T* xb = x + b * T_len * H;
  float* o = out + b * H;

  // token count (only used by the mean modes) and the first non-masked token (cls)
  float count = 0.f;
  for (int64_t t = threadIdx.x; t < T_len; t += blockDim.x) count += static_cast<float>(m[t]);
  count = BlockSum(count, scratch);

  if (mode == static_cast<int>(PoolMode::kCls)) {
    __shared__ long long first;
    if (threadIdx.x == 0) {
      first = 0;
      for (int64_t t = 0; t < T_len; ++t)
        if (m[t] != 0) { first = t; break; }
    }
    __syncthreads();
    for (int64_t h = threadIdx.x; h < H; h += blockDim.x) o[h] = ToFloat(xb[first * H + h]);
  } else {
    const bool is_max = mode == static_cast<int>(PoolMode::kMax);
    const float d = mode == static_cast<int>(PoolMode::kMeanSqrtLen) ? sqrtf(fmaxf(count, kCountClamp))
                                                                     : fmaxf(count, kCountClamp);
    for (int64_t h0 = 0; h0 < H; h0 += blockDim.x) {
      const int64_t h = h0 + threadIdx.x;
      float acc = is_max ? -INFINITY : 0.f;
      for (int64_t t0 = 0; t0 < T_len; t0 += kMaskTile) {
        const int64_t tn = min(static_cast<int64_t>(kMaskTile), T_len - t0);
        __syncthreads();
        for (int64_t t = threadIdx.x; t < tn; t += blockDim.x) w_tile[t] = static_cast<float>(m[t0 + t]);
        __syncthreads();
        if (h < H) {
          for (int64_t t = 0; t < tn; ++t) {
            const float w = w_tile[t];  // NOTE: block-uniform, so the branch never diverges
            if (w == 0.f) continue;
            const float v = ToFloat(xb[(t0 + t) * H + h]);  // fp32 accumulation even for fp16 input
            acc = is_max ? fmaxf(acc, v) : fmaf(w, v, acc);
          }
        }
      }
      if (h < H) o[h] = is_max ? acc : acc / d;
    }
  }
  if (normalize) {
    __syncthreads();
    float ss = 0.f;
    for (int64_t h = threadIdx.x; h < H; h += blockDim.x) ss += o[h] * o[h];
    const float norm = fmaxf(sqrtf(BlockSum(ss, scratch)), kNormEps);
    for (int64_t h = threadIdx.x; h < H; h += blockDim.x) o[h] = o[h] / norm;
  }
}

}  // namespace

namespace {

std::string Describe(cudaError_t e, const char* where) {
  return std::string(where) + ": " + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")";
}

// Makes `device` current for the scope and restores the previous one (multi-GPU hosts).
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    status_ = cudaGetDevice(&previous_);
    if (status_ == cudaSuccess && previous_ != device) {
      status_ = cudaSetDevice(device);
      switched_ = status_ == cudaSuccess;
    }
  }
  ~DeviceGuard() {
    if (switched_) cudaSetDevice(previous_);
  }
  cudaError_t status() const { return status_; }

 private:
  int previous_ = 0;
  bool switched_ = false;
  cudaError_t status_ = cudaSuccess;
};

}  // namespace

std::string LaunchPoolCuda(const void* x, bool x_is_half, const int64_t* mask, float* out, int64_t B, int64_t T,
                           int64_t H, PoolMode mode, bool normalize, void* stream, int device) {
  if (B == 0 || H == 0) return "";
  if (stream == nullptr) return "no CUDA stream";
  if (B > 0x7fffffffLL) return "batch too large for one grid (" + std::to_string(B) + " rows)";
  DeviceGuard guard(device);
  if (guard.status() != cudaSuccess) return Describe(guard.status(), "cudaSetDevice");
  const dim3 grid(static_cast<unsigned>(B)), block(kThreads);
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  if (x_is_half) {
    PoolKernel<__half><<<grid, block, 0, s>>>(static_cast<const __half*>(x), mask, out, T, H,
                                              static_cast<int>(mode), normalize ? 1 : 0);
  } else {
    PoolKernel<float><<<grid, block, 0, s>>>(static_cast<const float*>(x), mask, out, T, H,
                                             static_cast<int>(mode), normalize ? 1 : 0);
  }
  // NOTE: Peek, not Get: a launch-configuration error is reported without resetting the thread's error
  // state, which onnxruntime's own CUDA calls also read. Execution errors surface at ORT's next sync.
  const cudaError_t e = cudaPeekAtLastError();
  return e == cudaSuccess ? "" : Describe(e, "kernel launch");
}

}  // namespace embedrt
