// ai.embedrt::AddLayerNorm (layernorm.h): schema, shape inference, CPU kernel, registration. Replaces the
// exported graph's residual Add, LayerNormalization and the QuantizePerToken that reads it.
//
// Build and test: pip install -e . && python -m pytest -q tests/native/test_layernorm.py
#include "op_common.h"

#include <memory>
#include <string>
#include <vector>

#include "layernorm.h"
#include "mean_pool.h"
#include "quant.h"

namespace embedrt {
namespace {

struct LayerNormKernel {
  Isa isa = SelectIsa();
  float eps = 1e-5f;
  int qmax = 0;

  struct Job {
    const float *x, *res, *gamma, *beta;
    float eps;
    float* y;
    uint8_t* q;
    float* scale;
    int qmax;
    int64_t N, res_rows;
    Isa isa;
    void Run(int64_t begin, int64_t end) const {
      AddLayerNormRows(x, res, res_rows, gamma, beta, eps, y, q, scale, qmax, begin, end, N, isa);
    }
  };

  OrtStatusPtr ComputeV2(OrtKernelContext* context) {
    return Guarded("AddLayerNorm", [&]() -> OrtStatusPtr {
      Ort::KernelContext ctx(context);
      Ort::ConstValue x = ctx.GetInput(0), res = ctx.GetInput(1), g = ctx.GetInput(2), b = ctx.GetInput(3);
      const auto xs = x.GetTensorTypeAndShapeInfo().GetShape();
      const auto rs = res.GetTensorTypeAndShapeInfo().GetShape();
      const auto gs = g.GetTensorTypeAndShapeInfo().GetShape();
      const auto bs = b.GetTensorTypeAndShapeInfo().GetShape();
      // residual: x's shape, or that shape with leading dims of 1 (a position embedding [1, S, H])
      bool res_ok = !xs.empty() && rs.size() == xs.size();
      bool leading = true;
      int64_t res_rows = 1;
      for (size_t i = 0; res_ok && i < xs.size(); ++i) {
        if (rs[i] == 1 && leading && i + 1 < xs.size()) continue;
        leading = false;
        res_ok = rs[i] == xs[i];
        if (i + 1 < xs.size()) res_rows *= rs[i];
      }
      if (!res_ok)
        return Error("AddLayerNorm: residual must have x's shape (or leading dims of 1), got x " + ShapeString(xs) +
                     ", residual " + ShapeString(rs));
      const int64_t N = xs.back();
      if (gs.size() != 1 || gs[0] != N || bs.size() != 1 || bs[0] != N)
        return Error("AddLayerNorm: gamma and beta must be [" + std::to_string(N) + "], got " + ShapeString(gs) +
                     " and " + ShapeString(bs));
      int64_t rows = 1;
      for (size_t i = 0; i + 1 < xs.size(); ++i) rows *= xs[i];
      std::vector<int64_t> qs = xs, ss = xs;
      ss.back() = qmax > 0 ? 1 : 0;
      if (qmax == 0) qs.back() = 0;
      Ort::UnownedValue y = ctx.GetOutput(0, xs), q = ctx.GetOutput(1, qs), scale = ctx.GetOutput(2, ss);
      if (rows == 0 || N == 0) return nullptr;
      const Job job{x.GetTensorData<float>(),
                    res.GetTensorData<float>(),
                    g.GetTensorData<float>(),
                    b.GetTensorData<float>(),
                    eps,
                    y.GetTensorMutableData<float>(),
                    qmax > 0 ? q.GetTensorMutableData<uint8_t>() : nullptr,
                    qmax > 0 ? scale.GetTensorMutableData<float>() : nullptr,
                    qmax,
                    N,
                    res_rows,
                    isa};
      ParallelRows(ctx, job, rows, N);
      return nullptr;
    });
  }
};

struct LayerNormOp : Ort::CustomOpBase<LayerNormOp, LayerNormKernel, /*WithStatus=*/true> {
  LayerNormOp() {
    this->InferOutputShapeFn = [](const OrtCustomOp*, OrtShapeInferContext* raw) -> OrtStatusPtr {
      return Guarded("AddLayerNorm shape inference", [&]() -> OrtStatusPtr {
        using Dim = Ort::ShapeInferContext::SymbolicInteger;
        Ort::ShapeInferContext ctx(&Ort::GetApi(), raw);
        const auto& shape = ctx.GetInputShape(0);
        const bool quantized = OptionalIntAttr(ctx, "qmax") > 0;
        std::vector<Dim> dims(shape.begin(), shape.end());
        if (OrtStatusPtr st = SetOutputShape(raw, 0, ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, dims)) return st;
        std::vector<Dim> qd = dims, sd = dims;
        if (!dims.empty()) {
          if (!quantized) qd.back() = Dim(int64_t{0});
          sd.back() = Dim(int64_t{quantized ? 1 : 0});
        }
        if (OrtStatusPtr st = SetOutputShape(raw, 1, ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8, qd)) return st;
        return SetOutputShape(raw, 2, ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, sd);
      });
    };
  }
  OrtStatusPtr CreateKernelV2(const OrtApi& api, const OrtKernelInfo* info, void** op_kernel) const {
    float eps = 0.0f;
    if (OrtStatus* st = api.KernelInfoGetAttribute_float(info, "epsilon", &eps)) {
      api.ReleaseStatus(st);
      return Error("AddLayerNorm: attribute epsilon (float) is required");
    }
    const int64_t qmax = IntAttr(api, info, "qmax", 0);
    if (qmax < 0 || qmax > kQuantMax)
      return Error("AddLayerNorm: attribute qmax must be in [0, 127] (0: no quantization), got " +
                   std::to_string(qmax));
    auto kernel = std::make_unique<LayerNormKernel>();
    kernel->eps = eps;
    kernel->qmax = static_cast<int>(qmax);
    *op_kernel = kernel.release();
    return nullptr;
  }
  const char* GetName() const { return "AddLayerNorm"; }
  const char* GetExecutionProviderType() const { return nullptr; }
  size_t GetInputTypeCount() const { return 4; }
  ONNXTensorElementDataType GetInputType(size_t) const { return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT; }
  size_t GetOutputTypeCount() const { return 3; }
  ONNXTensorElementDataType GetOutputType(size_t index) const {
    return index == 1 ? ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8 : ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
  }
};

}  // namespace

void AddAddLayerNorm(Ort::CustomOpDomain* domain) {
  static LayerNormOp layernorm_op;
  domain->Add(&layernorm_op);
}

}  // namespace embedrt
