// ai.embedrt::QuantizePerToken (quant.h): schema, shape inference, CPU kernel, registration. With
// DequantizeRows (dequantize_op.cc) it makes the per-token int8 chains of the int8 variant.
//
// Build and test: pip install -e . && python -m pytest -q tests/native/test_quant_kernel.py tests/native/test_int8_native.py
#include "op_common.h"

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "mean_pool.h"
#include "quant.h"

namespace embedrt {
namespace {

struct QuantizeKernel {
  Isa isa = SelectIsa();
  bool heads_in = false;  // attribute heads_in: x [B, H, S, D] quantized as rows of [B, S, H*D]
  int qmax = kQuantMax;   // attribute qmax: the activations' range [-qmax, qmax], zero point qmax + 1

  struct Job {
    const float* x;
    uint8_t* q;
    float* scale;
    int64_t K;
    Isa isa;
    int qmax;
    int64_t H = 0, S = 0, D = 0;  // heads_in only
    void Run(int64_t begin, int64_t end) const {
      if (H == 0) {
        QuantizeRows(x, q, scale, begin, end, K, isa, qmax);
        return;
      }
      // gather each token's heads into one row (as Transpose + Reshape would), then the same quantization
      std::vector<float> row(static_cast<size_t>(K));
      for (int64_t r = begin; r < end; ++r) {
        const int64_t b = r / S, s = r % S;
        for (int64_t h = 0; h < H; ++h)
          std::memcpy(row.data() + h * D, x + ((b * H + h) * S + s) * D, static_cast<size_t>(D) * sizeof(float));
        QuantizeRows(row.data(), q + r * K, scale + r, 0, 1, K, isa, qmax);
      }
    }
  };

  OrtStatusPtr ComputeV2(OrtKernelContext* context) {
    return Guarded("QuantizePerToken", [&]() -> OrtStatusPtr {
      Ort::KernelContext ctx(context);
      Ort::ConstValue x = ctx.GetInput(0);
      auto info = x.GetTensorTypeAndShapeInfo();
      if (info.GetElementType() != ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT)
        return Error("QuantizePerToken: x must be float32, got ONNX element type " +
                     std::to_string(static_cast<int>(info.GetElementType())));
      const auto xs = info.GetShape();
      if (xs.empty()) return Error("QuantizePerToken: x must have rank >= 1, got a scalar");
      if (heads_in && xs.size() != 4)
        return Error("QuantizePerToken: heads_in=1 needs x [batch, heads, sequence, head_size], got " +
                     ShapeString(xs));
      std::vector<int64_t> qs = heads_in ? std::vector<int64_t>{xs[0], xs[2], xs[1] * xs[3]} : xs;
      std::vector<int64_t> ss = qs;
      ss.back() = 1;
      Ort::UnownedValue q = ctx.GetOutput(0, qs);
      Ort::UnownedValue scale = ctx.GetOutput(1, ss);
      const int64_t K = qs.back();
      const int64_t rows = K > 0 ? static_cast<int64_t>(info.GetElementCount()) / K : 0;
      if (rows == 0) return nullptr;
      Job job{x.GetTensorData<float>(), q.GetTensorMutableData<uint8_t>(),
              scale.GetTensorMutableData<float>(), K, isa, qmax};
      if (heads_in) {
        job.H = xs[1];
        job.S = xs[2];
        job.D = xs[3];
      }
      ParallelRows(ctx, job, rows, K);
      return nullptr;
    });
  }
};

struct QuantizeOp : Ort::CustomOpBase<QuantizeOp, QuantizeKernel, /*WithStatus=*/true> {
  QuantizeOp() {
    // x [..., K] -> uint8 [..., K], float [..., 1]
    this->InferOutputShapeFn = [](const OrtCustomOp*, OrtShapeInferContext* raw) -> OrtStatusPtr {
      return Guarded("QuantizePerToken shape inference", [&]() -> OrtStatusPtr {
        using Dim = Ort::ShapeInferContext::SymbolicInteger;
        Ort::ShapeInferContext ctx(&Ort::GetApi(), raw);
        const auto& shape = ctx.GetInputShape(0);
        std::vector<Dim> dims(shape.begin(), shape.end());
        if (dims.empty()) return Error("QuantizePerToken: x must have rank >= 1");
        if (OptionalIntAttr(ctx, "heads_in") == 1 && shape.size() == 4) {
          const bool known = shape[1].IsInt() && shape[3].IsInt() && shape[1].AsInt() >= 0 && shape[3].AsInt() >= 0;
          dims = {shape[0], shape[2], known ? Dim(shape[1].AsInt() * shape[3].AsInt()) : Dim(int64_t{-1})};
        }
        if (OrtStatusPtr st = SetOutputShape(raw, 0, ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8, dims)) return st;
        dims.back() = Ort::ShapeInferContext::SymbolicInteger(int64_t{1});
        return SetOutputShape(raw, 1, ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, dims);
      });
    };
  }
  OrtStatusPtr CreateKernelV2(const OrtApi& api, const OrtKernelInfo* info, void** op_kernel) const {
    const int64_t heads_in = IntAttr(api, info, "heads_in", 0);
    if (heads_in != 0 && heads_in != 1)
      return Error("QuantizePerToken: attribute heads_in must be 0 or 1, got " + std::to_string(heads_in));
    const int64_t qmax = IntAttr(api, info, "qmax", kQuantMax);
    if (qmax < 1 || qmax > 127)
      return Error("QuantizePerToken: attribute qmax must be in [1, 127], got " + std::to_string(qmax));
    auto kernel = std::make_unique<QuantizeKernel>();
    kernel->heads_in = heads_in == 1;
    kernel->qmax = static_cast<int>(qmax);
    *op_kernel = kernel.release();
    return nullptr;
  }
  const char* GetName() const { return "QuantizePerToken"; }
  const char* GetExecutionProviderType() const { return nullptr; }
  size_t GetInputTypeCount() const { return 1; }
  ONNXTensorElementDataType GetInputType(size_t) const { return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT; }
  size_t GetOutputTypeCount() const { return 2; }
  ONNXTensorElementDataType GetOutputType(size_t index) const {
    return index == 0 ? ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8 : ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
  }
};

}  // namespace

void AddQuantizePerToken(Ort::CustomOpDomain* domain) {
  static QuantizeOp quantize_op;
  domain->Add(&quantize_op);
}

}  // namespace embedrt
