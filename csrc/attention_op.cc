// ai.embedrt::Attention (attention.h): schema, shape inference, CPU kernel, registration. Replaces the
// exported graph's MatMul(Q, K^T), Mul(scale), Add(mask bias), Softmax, MatMul(P, V) of each layer.
//
// Build and test: pip install -e . && python -m pytest -q tests/native/test_attention.py
#include "op_common.h"

#include <memory>
#include <string>
#include <vector>

#include "attention.h"
#include "mean_pool.h"

namespace embedrt {
namespace {

struct AttentionKernel {
  Isa isa = SelectIsa();
  float scale = 1.0f;

  struct Job {
    const float *q, *k, *v, *bias;
    float* ctx;
    float scale;
    AttentionShape shape;
    Isa isa;
    void Run(int64_t begin, int64_t end) const {
      AttentionBlocks(q, k, v, bias, ctx, scale, shape, begin, end, isa);
    }
  };

  OrtStatusPtr ComputeV2(OrtKernelContext* context) {
    return Guarded("Attention", [&]() -> OrtStatusPtr {
      Ort::KernelContext ctx(context);
      Ort::ConstValue q = ctx.GetInput(0), k = ctx.GetInput(1), v = ctx.GetInput(2), bias = ctx.GetInput(3);
      const auto qs = q.GetTensorTypeAndShapeInfo().GetShape();
      const auto ks = k.GetTensorTypeAndShapeInfo().GetShape();
      const auto vs = v.GetTensorTypeAndShapeInfo().GetShape();
      const auto bs = bias.GetTensorTypeAndShapeInfo().GetShape();
      if (qs.size() != 4 || ks != qs || vs != qs)
        return Error("Attention: q, k and v must all be [batch, heads, sequence, head_size], got q " +
                     ShapeString(qs) + ", k " + ShapeString(ks) + ", v " + ShapeString(vs));
      const int64_t B = qs[0], H = qs[1], S = qs[2], D = qs[3];
      const bool bias_ok = bs.size() == 4 && (bs[0] == B || bs[0] == 1) && (bs[1] == H || bs[1] == 1) &&
                           (bs[2] == S || bs[2] == 1) && bs[3] == S;
      if (!bias_ok)
        return Error("Attention: bias must be [batch or 1, heads or 1, sequence or 1, sequence] for q " +
                     ShapeString(qs) + ", got " + ShapeString(bs));
      Ort::UnownedValue out = ctx.GetOutput(0, qs);
      if (B * H * S * D == 0) return nullptr;
      AttentionShape shape{B, H, S, D, 0, 0, 0};
      shape.bias_i = bs[2] == 1 ? 0 : S;
      shape.bias_h = bs[1] == 1 ? 0 : bs[2] * S;
      shape.bias_b = bs[0] == 1 ? 0 : bs[1] * bs[2] * S;
      const Job job{q.GetTensorData<float>(), k.GetTensorData<float>(), v.GetTensorData<float>(),
                    bias.GetTensorData<float>(), out.GetTensorMutableData<float>(), scale, shape, isa};
      // NOTE: one (batch, head) block per task unless they are tiny; the work of a block is S * S * D
      ParallelRows(ctx, job, B * H, S * (S + D));
      return nullptr;
    });
  }
};

struct AttentionOp : Ort::CustomOpBase<AttentionOp, AttentionKernel, /*WithStatus=*/true> {
  AttentionOp() {
    this->InferOutputShapeFn = [](const OrtCustomOp*, OrtShapeInferContext* raw) -> OrtStatusPtr {
      return Guarded("Attention shape inference", [&]() -> OrtStatusPtr {
        Ort::ShapeInferContext ctx(&Ort::GetApi(), raw);
        const auto& shape = ctx.GetInputShape(0);
        return SetOutputShape(raw, 0, ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, {shape.begin(), shape.end()});
      });
    };
  }
  OrtStatusPtr CreateKernelV2(const OrtApi& api, const OrtKernelInfo* info, void** op_kernel) const {
    float scale = 0.0f;
    if (OrtStatus* st = api.KernelInfoGetAttribute_float(info, "scale", &scale)) {
      api.ReleaseStatus(st);
      return Error("Attention: attribute scale (float) is required");
    }
    auto kernel = std::make_unique<AttentionKernel>();
    kernel->scale = scale;
    *op_kernel = kernel.release();
    return nullptr;
  }
  const char* GetName() const { return "Attention"; }
  const char* GetExecutionProviderType() const { return nullptr; }
  size_t GetInputTypeCount() const { return 4; }
  ONNXTensorElementDataType GetInputType(size_t) const { return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT; }
  size_t GetOutputTypeCount() const { return 1; }
  ONNXTensorElementDataType GetOutputType(size_t) const { return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT; }
};

}  // namespace

void AddAttention(Ort::CustomOpDomain* domain) {
  static AttentionOp attention_op;
  domain->Add(&attention_op);
}

}  // namespace embedrt
