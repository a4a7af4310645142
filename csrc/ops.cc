// ONNX Runtime custom-op library libembedrt_ops: registers the ai.embedrt ops, one file each (schema, shape
// inference, kernel): MeanPoolNormalize (mean_pool_op.cc; CPU, plus CUDA when built with nvcc), QuantizePerToken
// (quantize_op.cc), DequantizeRows and RequantizeRows (dequantize_op.cc), the per-token int8 chains of the int8
// variant, and PackedMatMul (packed_matmul_op.cc), the fp32 Linear with weights packed at load (with an optional
// GELU epilogue, gelu_cpu.cc), Attention (attention_op.cc), a layer's softmax attention in one pass, and
// AddLayerNorm (layernorm_op.cc), a residual add + LayerNormalization (+ the next quantization), and
// PackedMatMulInteger (packed_matmul_integer_op.cc, int8_gemm_cpu.cc), the int8 GEMM with weights packed at load.
// Shared helpers: op_common.h.
//
// Build and test: pip install -e . && python -m pytest -q tests/native     (or: embedrt build-ops [--cuda on])
// Load:  so = onnxruntime.SessionOptions(); so.register_custom_ops_library(path_to_libembedrt_ops.so)
#include "op_common.h"

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "mean_pool.h"

namespace {
constexpr const char* kDomain = "ai.embedrt";
}  // namespace

// Build facts for the Python runtime (ctypes), which must know whether MeanPoolNormalize has a CUDA kernel
// before it serves the fused graph on a GPU (a CPU-only kernel there means a device-to-host copy of [B,T,H]).
EMBEDRT_EXPORT const char* EmbedrtOpsBuildInfo() {
#ifdef EMBEDRT_WITH_CUDA
#define EMBEDRT_CUDA_FLAG "1"
#else
#define EMBEDRT_CUDA_FLAG "0"
#endif
#define EMBEDRT_STR2(x) #x
#define EMBEDRT_STR(x) EMBEDRT_STR2(x)
  return "cuda=" EMBEDRT_CUDA_FLAG ";ort_api=" EMBEDRT_STR(ORT_API_VERSION);
}

// What the kernels run on this CPU, for the runtime's report (runtime/native.py cpu_kernels, through ctypes):
// the ISA the kernels choose (EMBEDRT_OPS_ISA applied), the CPU's best, and its cpuid feature bits (kFeat*).
EMBEDRT_EXPORT const char* EmbedrtKernelIsa() { return embedrt::IsaName(embedrt::SelectIsa()); }
EMBEDRT_EXPORT const char* EmbedrtCpuIsa() { return embedrt::IsaName(embedrt::CpuIsa()); }
EMBEDRT_EXPORT unsigned EmbedrtCpuFeatures() { return embedrt::CpuFeatures(); }

// ORT calls it from SessionOptions.register_custom_ops_library.
EMBEDRT_EXPORT OrtStatus* ORT_API_CALL RegisterCustomOps(OrtSessionOptions* options, const OrtApiBase* api_base) {
  using namespace embedrt;
  // NOTE: GetApi returns NULL when this header (API ORT_API_VERSION) is newer than the running onnxruntime.
  const OrtApi* api = api_base->GetApi(ORT_API_VERSION);
  if (api == nullptr) {
    const OrtApi* any = api_base->GetApi(1);
    if (any == nullptr) return nullptr;  // cannot even build a status: ORT reports a generic failure
    const std::string msg = std::string("libembedrt_ops needs ONNX Runtime C API ") + std::to_string(ORT_API_VERSION) +
                            " (onnxruntime >= 1." + std::to_string(ORT_API_VERSION) + "); this runtime is " +
                            api_base->GetVersionString();
    return any->CreateStatus(ORT_FAIL, msg.c_str());
  }
  Ort::InitApi(api);
  // NOTE: ORT keeps a pointer to the domain for the session's lifetime: keep one per process, shared.
  static std::mutex mu;
  static std::vector<std::unique_ptr<Ort::CustomOpDomain>> domains;
  try {
    std::lock_guard<std::mutex> lock(mu);
    auto domain = std::make_unique<Ort::CustomOpDomain>(kDomain);
    AddMeanPoolNormalize(domain.get());
    AddQuantizePerToken(domain.get());
    AddDequantizeRows(domain.get());
    AddRequantizeRows(domain.get());
    AddPackedMatMul(domain.get());
    AddPackedMatMulInteger(domain.get());
    AddAttention(domain.get());
    AddAddLayerNorm(domain.get());
#ifdef EMBEDRT_WITH_CUDA
    AddMeanPoolNormalizeCuda(domain.get());
#endif
    Ort::UnownedSessionOptions so(options);
    so.Add(*domain);
    domains.push_back(std::move(domain));
  } catch (const Ort::Exception& e) {
    return api->CreateStatus(e.GetOrtErrorCode(), e.what());
  } catch (const std::exception& e) {
    return api->CreateStatus(ORT_FAIL, e.what());
  }
  return nullptr;
}
