// Tier A of benchmarks/gpu_check.py: the CUDA MeanPoolNormalize kernel (csrc/mean_pool_cuda.cu) against the CPU
// kernel (csrc/mean_pool_cpu.cc), without onnxruntime, so it runs where only nvcc and a driver exist and can
// run under compute-sanitizer.
//
// Build: nvcc -O2 -std=c++17 -Icsrc benchmarks/gpu/pool_check.cu csrc/mean_pool_cuda.cu csrc/mean_pool_cpu.cc
//             -DEMBEDRT_WITH_CUDA -o pool_check
// Run:   ./pool_check [--cpu-only] [--small]       (one JSON object per case on stdout, then a summary line)
//
// Cases: every mode (mean, mean_sqrt_len, max, cls) x normalize {0,1} x fp32/fp16 x H in {1, 33, 384, 1031,
// 65537} x T in {1, 2000}; batch 3, row 0 all padding, the others with random lengths. --small drops
// H = 65537 (for compute-sanitizer, which is ~100x slower). --cpu-only compares the CPU kernel with a double
// reference in this file (what a machine without a GPU can check). Pass: max |gpu - cpu| <= 1e-5 * max(1, |cpu|)
// (-inf equals -inf and NaN equals NaN: max pooling over an all-padding row, as the exported graph gives).
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "mean_pool.h"

using embedrt::PoolMode;

namespace {

const char* ModeName(PoolMode m) {
  switch (m) {
    case PoolMode::kMean: return "mean";
    case PoolMode::kMeanSqrtLen: return "mean_sqrt_len";
    case PoolMode::kMax: return "max";
    default: return "cls";
  }
}

uint16_t ToHalfBits(float v) {
  const __half h = __float2half(v);
  uint16_t bits;
  std::memcpy(&bits, &h, 2);
  return bits;
}

float FromHalfBits(uint16_t bits) {
  __half h;
  std::memcpy(&h, &bits, 2);
  return __half2float(h);
}

// Double-precision reference with mean_pool.h's semantics.
void Reference(const std::vector<float>& x, const std::vector<int64_t>& mask, std::vector<float>* out, int64_t B,
               int64_t T, int64_t H, PoolMode mode, bool normalize) {
  for (int64_t b = 0; b < B; ++b) {
    double count = 0;
    int64_t first = -1;
    for (int64_t t = 0; t < T; ++t) {
      count += static_cast<double>(mask[b * T + t]);
      if (first < 0 && mask[b * T + t] != 0) first = t;
    }
    if (first < 0) first = 0;
    const double d = mode == PoolMode::kMeanSqrtLen ? std::sqrt(std::max(count, 1e-9)) : std::max(count, 1e-9);
    std::vector<double> o(H);
    for (int64_t h = 0; h < H; ++h) {
      double acc = mode == PoolMode::kMax ? -std::numeric_limits<double>::infinity() : 0.0;
      if (mode == PoolMode::kCls) {
        acc = x[(b * T + first) * H + h];
      } else {
        for (int64_t t = 0; t < T; ++t) {
          const double w = static_cast<double>(mask[b * T + t]);
          if (w == 0) continue;
          const double v = x[(b * T + t) * H + h];
          acc = mode == PoolMode::kMax ? std::max(acc, v) : acc + w * v;
        }
        if (mode != PoolMode::kMax) acc /= d;
      }
      o[h] = acc;
    }
    if (normalize) {
      double ss = 0;
      for (double v : o) ss += v * v;
      const double n = std::max(std::sqrt(ss), 1e-12);
      for (double& v : o) v /= n;
    }
    for (int64_t h = 0; h < H; ++h) (*out)[b * H + h] = static_cast<float>(o[h]);
  }
}

double MaxDiff(const std::vector<float>& a, const std::vector<float>& ref, double* scale) {
  double diff = 0, big = 1;
  for (size_t i = 0; i < ref.size(); ++i) {
    if (std::isinf(ref[i]) && a[i] == ref[i]) continue;
    if (std::isnan(ref[i]) && std::isnan(a[i])) continue;  // max + normalize of an all-padding row: -inf/inf
    if (std::isfinite(ref[i])) big = std::max(big, static_cast<double>(std::fabs(ref[i])));
    const double d = std::fabs(static_cast<double>(a[i]) - ref[i]);
    diff = std::isnan(d) ? std::numeric_limits<double>::infinity() : std::max(diff, d);
  }
  *scale = big;
  return diff;
}

#define CHECK_CUDA(expr)                                                                          \
  do {                                                                                            \
    const cudaError_t e_ = (expr);                                                                \
    if (e_ != cudaSuccess) {                                                                      \
      std::printf("{\"error\": \"%s: %s\"}\n", #expr, cudaGetErrorString(e_));                    \
      return 2;                                                                                   \
    }                                                                                             \
  } while (0)

}  // namespace

int main(int argc, char** argv) {
  bool cpu_only = false, small = false;
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--cpu-only") cpu_only = true;
    if (std::string(argv[i]) == "--small") small = true;
  }
  std::vector<int64_t> Hs = {1, 33, 384, 1031, 65537};
  if (small) Hs.pop_back();
  const std::vector<int64_t> Ts = {1, 2000};
  const PoolMode modes[] = {PoolMode::kMean, PoolMode::kMeanSqrtLen, PoolMode::kMax, PoolMode::kCls};
  const embedrt::Isa isa = embedrt::SelectIsa();
  cudaStream_t stream = nullptr;
  int device = 0;
  if (!cpu_only) {
    CHECK_CUDA(cudaGetDevice(&device));
    CHECK_CUDA(cudaStreamCreate(&stream));
  }
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.f, 1.f);
  int cases = 0, failed = 0;
  double worst = 0;
  const int64_t B = 3;
  for (int64_t T : Ts) {
    for (int64_t H : Hs) {
      const int64_t n = B * T * H;
      std::vector<float> x(n);
      for (auto& v : x) v = normal(rng);
      std::vector<int64_t> mask(B * T, 0);  // row 0: all padding
      for (int64_t b = 1; b < B; ++b) {
        const int64_t len = 1 + static_cast<int64_t>(rng() % T);
        for (int64_t t = 0; t < len; ++t) mask[b * T + t] = 1;
      }
      std::vector<uint16_t> xh(n);
      std::vector<float> xh_f(n);
      for (int64_t i = 0; i < n; ++i) {
        xh[i] = ToHalfBits(x[i]);
        xh_f[i] = FromHalfBits(xh[i]);
      }
      void *dx = nullptr, *dxh = nullptr, *dmask = nullptr, *dout = nullptr;
      if (!cpu_only) {
        CHECK_CUDA(cudaMalloc(&dx, n * sizeof(float)));
        CHECK_CUDA(cudaMalloc(&dxh, n * sizeof(uint16_t)));
        CHECK_CUDA(cudaMalloc(&dmask, B * T * sizeof(int64_t)));
        CHECK_CUDA(cudaMalloc(&dout, B * H * sizeof(float)));
        CHECK_CUDA(cudaMemcpy(dx, x.data(), n * sizeof(float), cudaMemcpyHostToDevice));
        CHECK_CUDA(cudaMemcpy(dxh, xh.data(), n * sizeof(uint16_t), cudaMemcpyHostToDevice));
        CHECK_CUDA(cudaMemcpy(dmask, mask.data(), B * T * sizeof(int64_t), cudaMemcpyHostToDevice));
      }
      for (PoolMode mode : modes) {
        for (int norm = 0; norm < 2; ++norm) {
          for (int half = 0; half < 2; ++half) {
            std::vector<float> cpu(B * H), other(B * H);
            if (half)
              embedrt::PoolRowsF16(xh.data(), mask.data(), cpu.data(), 0, B, T, H, mode, norm, isa);
            else
              embedrt::PoolRowsF32(x.data(), mask.data(), cpu.data(), 0, B, T, H, mode, norm, isa);
            std::string launch;
            if (cpu_only) {
              Reference(half ? xh_f : x, mask, &other, B, T, H, mode, norm);
            } else {
              launch = embedrt::LaunchPoolCuda(half ? dxh : dx, half, static_cast<const int64_t*>(dmask),
                                               static_cast<float*>(dout), B, T, H, mode, norm, stream, device);
              CHECK_CUDA(cudaStreamSynchronize(stream));
              CHECK_CUDA(cudaMemcpy(other.data(), dout, B * H * sizeof(float), cudaMemcpyDeviceToHost));
            }
            double scale = 1;
            const double diff = launch.empty() ? MaxDiff(other, cpu, &scale) : INFINITY;
            const bool ok = diff <= 1e-5 * scale;
            ++cases;
            failed += ok ? 0 : 1;
            worst = std::max(worst, diff / scale);
            std::printf("{\"mode\": \"%s\", \"normalize\": %d, \"dtype\": \"%s\", \"B\": %lld, \"T\": %lld, "
                        "\"H\": %lld, \"max_abs_diff\": %.3e, \"scale\": %.3e, \"ok\": %s%s%s%s}\n",
                        ModeName(mode), norm, half ? "float16" : "float32", static_cast<long long>(B),
                        static_cast<long long>(T), static_cast<long long>(H), diff, scale, ok ? "true" : "false",
                        launch.empty() ? "" : ", \"launch_error\": \"", launch.c_str(), launch.empty() ? "" : "\"");
          }
        }
      }
      if (!cpu_only) {
        cudaFree(dx);
        cudaFree(dxh);
        cudaFree(dmask);
        cudaFree(dout);
      }
    }
  }
  std::printf("{\"summary\": true, \"against\": \"%s\", \"cases\": %d, \"failed\": %d, \"worst_scaled_diff\": %.3e}\n",
              cpu_only ? "double reference (CPU kernel checked)" : "CPU kernel", cases, failed, worst);
  if (stream) cudaStreamDestroy(stream);
  return failed ? 1 : 0;
}
