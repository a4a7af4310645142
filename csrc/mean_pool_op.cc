// ai.embedrt::MeanPoolNormalize: schema, shape inference, CPU kernel (plus CUDA when built with nvcc),
// registration.
//
// Build and test: pip install -e . && python -m pytest -q tests/native/test_kernel.py tests/native/test_cuda.py tests/native/test_encoder_fused.py
//
//   MeanPoolNormalize(token_embeddings: float|float16 [B,T,H], attention_mask: int64 [B,T]) -> float [B,H]
//     attributes: mode = "mean" (default) | "mean_sqrt_len" | "max" | "cls";  normalize = 0 (default) | 1
//
// The whole cost and the numbers are described in mean_pool.h / mean_pool_cpu.cc / mean_pool_cuda.cu.
#include "op_common.h"

#include <memory>
#include <string>
#include <vector>

#include "mean_pool.h"

namespace embedrt {
namespace {

constexpr const char* kOpName = "MeanPoolNormalize";
constexpr const char* kValidModes = "'mean', 'mean_sqrt_len', 'max', 'cls'";

bool ParseMode(const std::string& name, PoolMode* mode) {
  if (name == "mean") *mode = PoolMode::kMean;
  else if (name == "mean_sqrt_len") *mode = PoolMode::kMeanSqrtLen;
  else if (name == "max") *mode = PoolMode::kMax;
  else if (name == "cls") *mode = PoolMode::kCls;
  else return false;
  return true;
}

struct Attrs {
  PoolMode mode = PoolMode::kMean;
  bool normalize = false;
};

// Reads the attributes, with their defaults when absent. Returns a non-empty message on a bad value.
std::string ReadAttrs(const OrtApi& api, const OrtKernelInfo* info, Attrs* attrs) {
  int64_t normalize = 0;
  if (OrtStatus* st = api.KernelInfoGetAttribute_int64(info, "normalize", &normalize)) {
    api.ReleaseStatus(st);  // absent: default 0
    normalize = 0;
  }
  if (normalize != 0 && normalize != 1)
    return "MeanPoolNormalize: attribute normalize must be 0 or 1, got " + std::to_string(normalize);
  attrs->normalize = normalize == 1;
  const std::string mode = StringAttr(api, info, "mode", "mean");
  if (!ParseMode(mode, &attrs->mode))
    return "MeanPoolNormalize: unknown mode '" + mode + "'; valid choices: " + kValidModes;
  return {};
}

struct Checked {
  int64_t B = 0, T = 0, H = 0;
  bool half = false;
};

// Validates the inputs of one call. Returns a non-empty message on bad shapes or types.
std::string CheckInputs(const Ort::ConstValue& x, const Ort::ConstValue& mask, const Attrs& attrs, Checked* c) {
  auto xi = x.GetTensorTypeAndShapeInfo();
  auto mi = mask.GetTensorTypeAndShapeInfo();
  const auto xs = xi.GetShape();
  const auto ms = mi.GetShape();
  const auto xt = xi.GetElementType();
  if (xt != ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT && xt != ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16)
    return "MeanPoolNormalize: token_embeddings must be float32 or float16, got ONNX element type " +
           std::to_string(static_cast<int>(xt));
  if (mi.GetElementType() != ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64)
    return "MeanPoolNormalize: attention_mask must be int64, got ONNX element type " +
           std::to_string(static_cast<int>(mi.GetElementType()));
  if (xs.size() != 3)
    return "MeanPoolNormalize: token_embeddings must be [batch, sequence, hidden], got shape " + ShapeString(xs);
  if (ms.size() != 2 || ms[0] != xs[0] || ms[1] != xs[1])
    return "MeanPoolNormalize: attention_mask must be [batch, sequence] = " + ShapeString({xs[0], xs[1]}) +
           " to match token_embeddings " + ShapeString(xs) + ", got " + ShapeString(ms);
  if (attrs.mode == PoolMode::kCls && xs[1] == 0 && xs[0] > 0)
    return "MeanPoolNormalize: mode 'cls' needs at least one token, got token_embeddings " + ShapeString(xs);
  c->B = xs[0];
  c->T = xs[1];
  c->H = xs[2];
  c->half = xt == ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16;
  return {};
}

// ------------------------------------------------------------------------------------------- CPU kernel
struct CpuKernel {
  Attrs attrs;
  Isa isa = SelectIsa();

  struct Job {
    const void* x;
    const int64_t* mask;
    float* out;
    int64_t T, H;
    bool half;
    const CpuKernel* self;
    void Run(int64_t begin, int64_t end) const {
      if (half)
        PoolRowsF16(static_cast<const uint16_t*>(x), mask, out, begin, end, T, H, self->attrs.mode,
                    self->attrs.normalize, self->isa);
      else
        PoolRowsF32(static_cast<const float*>(x), mask, out, begin, end, T, H, self->attrs.mode,
                    self->attrs.normalize, self->isa);
    }
  };

  OrtStatusPtr ComputeV2(OrtKernelContext* context) {
    return Guarded("MeanPoolNormalize", [&]() -> OrtStatusPtr {
      Ort::KernelContext ctx(context);
      Ort::ConstValue x = ctx.GetInput(0), mask = ctx.GetInput(1);
      Checked c;
      const std::string err = CheckInputs(x, mask, attrs, &c);
      if (!err.empty()) return Error(err);
      Ort::UnownedValue out = ctx.GetOutput(0, {c.B, c.H});
      if (c.B == 0 || c.H == 0) return nullptr;
      const Job job{x.GetTensorRawData(), mask.GetTensorData<int64_t>(), out.GetTensorMutableData<float>(),
                    c.T, c.H, c.half, this};
      ParallelRows(ctx, job, c.B, c.T * c.H);
      return nullptr;
    });
  }
};

#ifdef EMBEDRT_WITH_CUDA
struct CudaKernel {
  Attrs attrs;

  OrtStatusPtr ComputeV2(OrtKernelContext* context) {
    return Guarded("MeanPoolNormalize", [&]() -> OrtStatusPtr {
      Ort::KernelContext ctx(context);
      Ort::ConstValue x = ctx.GetInput(0), mask = ctx.GetInput(1);
      Checked c;
      const std::string err = CheckInputs(x, mask, attrs, &c);
      if (!err.empty()) return Error(err);
      Ort::UnownedValue out = ctx.GetOutput(0, {c.B, c.H});
      if (c.B == 0 || c.H == 0) return nullptr;
      // NOTE: ORT hands a CUDA kernel its compute stream; without one (null) the launch would go to the legacy
      // default stream and race with ORT's own stream, so refuse instead.
      void* stream = ctx.GetGPUComputeStream();
      if (stream == nullptr) return Error("MeanPoolNormalize: no CUDA compute stream from onnxruntime", ORT_FAIL);
      // NOTE: launch on the device that holds the input (multi-GPU: sessions with device_id != 0), and restore
      // the caller's current device afterwards.
      const int device = x.GetTensorMemoryInfo().GetDeviceId();
      const std::string launch = LaunchPoolCuda(x.GetTensorRawData(), c.half, mask.GetTensorData<int64_t>(),
                                                out.GetTensorMutableData<float>(), c.B, c.T, c.H, attrs.mode,
                                                attrs.normalize, stream, device);
      if (!launch.empty()) return Error("MeanPoolNormalize: CUDA launch failed: " + launch, ORT_FAIL);
      return nullptr;
    });
  }
};
#endif

// ------------------------------------------------------------------------------------------- op schema
template <typename Kernel>
struct PoolOp : Ort::CustomOpBase<PoolOp<Kernel>, Kernel, /*WithStatus=*/true> {
  explicit PoolOp(const char* provider) : provider_(provider) {
    // NOTE: set by hand rather than through CustomOpBase's InferOutputShape hook: that hook's SetOutputShape
    // writes symbolic dims as -2, which ORT rejects, so a graph with a named batch dim got no output shape.
    this->InferOutputShapeFn = [](const OrtCustomOp*, OrtShapeInferContext* raw) -> OrtStatusPtr {
      return Guarded("MeanPoolNormalize shape inference", [&]() -> OrtStatusPtr {
        Ort::ShapeInferContext ctx(&Ort::GetApi(), raw);
        return InferShape(ctx, raw);
      });
    };
  }

  OrtStatusPtr CreateKernelV2(const OrtApi& api, const OrtKernelInfo* info, void** op_kernel) const {
    auto kernel = std::make_unique<Kernel>();
    const std::string err = ReadAttrs(api, info, &kernel->attrs);
    if (!err.empty()) return Error(err);
    *op_kernel = kernel.release();
    return nullptr;
  }

  const char* GetName() const { return kOpName; }
  const char* GetExecutionProviderType() const { return provider_; }
  size_t GetInputTypeCount() const { return 2; }
  ONNXTensorElementDataType GetInputType(size_t index) const {
    // NOTE: UNDEFINED makes input 0 type-polymorphic; float32/float16 are checked in CheckInputs.
    return index == 0 ? ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED : ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64;
  }
  size_t GetOutputTypeCount() const { return 1; }
  ONNXTensorElementDataType GetOutputType(size_t) const { return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT; }

  // [B,T,H], [B,T] -> [B,H]. NOTE: onnxruntime only logs a custom op's inference error; Compute checks again.
  static OrtStatusPtr InferShape(Ort::ShapeInferContext& ctx, OrtShapeInferContext* raw) {
    if (ctx.GetInputCount() != 2) return Error("MeanPoolNormalize: expects 2 inputs");
    const auto& xs = ctx.GetInputShape(0);
    const auto& ms = ctx.GetInputShape(1);
    if (xs.size() != 3)
      return Error("MeanPoolNormalize: token_embeddings must have rank 3 [batch, sequence, hidden], got rank " +
                   std::to_string(xs.size()));
    if (ms.size() != 2)
      return Error("MeanPoolNormalize: attention_mask must have rank 2 [batch, sequence], got rank " +
                   std::to_string(ms.size()));
    for (int i = 0; i < 2; ++i) {
      if (xs[i].IsInt() && ms[i].IsInt() && xs[i].AsInt() >= 0 && ms[i].AsInt() >= 0 && xs[i].AsInt() != ms[i].AsInt())
        return Error("MeanPoolNormalize: attention_mask dim " + std::to_string(i) + " is " +
                     std::to_string(ms[i].AsInt()) + " but token_embeddings dim " + std::to_string(i) + " is " +
                     std::to_string(xs[i].AsInt()));
    }
    // The batch dim from either input: a known size first, then a symbolic name (SetOutputShape names the rest).
    auto known = [](const Ort::ShapeInferContext::SymbolicInteger& d) { return d.IsInt() && d.AsInt() >= 0; };
    const auto& batch = known(xs[0]) ? xs[0] : known(ms[0]) ? ms[0] : !xs[0].IsInt() ? xs[0] : ms[0];
    return SetOutputShape(raw, 0, ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, {batch, xs[2]});
  }

 private:
  const char* provider_;
};

}  // namespace

void AddMeanPoolNormalize(Ort::CustomOpDomain* domain) {
  static PoolOp<CpuKernel> cpu_op(nullptr);
  domain->Add(&cpu_op);
}

#ifdef EMBEDRT_WITH_CUDA
void AddMeanPoolNormalizeCuda(Ort::CustomOpDomain* domain) {
  static PoolOp<CudaKernel> cuda_op("CUDAExecutionProvider");
  domain->Add(&cuda_op);
}
#endif

}  // namespace embedrt
