// ai.embedrt::DequantizeRows (quant.h): schema, shape inference, CPU kernel, registration. The second half of
// the int8 variant's per-token chains (after QuantizePerToken, quantize_op.cc, and MatMulInteger). Also
// ai.embedrt::RequantizeRows: DequantizeRows, an activation and the next QuantizePerToken in one pass.
//
// Build and test: pip install -e . && python -m pytest -q tests/native/test_quant_kernel.py tests/native/test_int8_native.py
#include "op_common.h"

#include <memory>
#include <string>
#include <vector>

#include "gelu.h"
#include "mean_pool.h"
#include "quant.h"

namespace embedrt {
namespace {

// The inputs (acc int32 [..., N], row_scale float [..., 1], col_scale float [N], bias float [N] optional) of
// DequantizeRows and RequantizeRows, checked; an error message, or "".
struct DequantInputs {
  const int32_t* acc = nullptr;
  const float* row_scale = nullptr;
  const float* col_scale = nullptr;
  const float* bias = nullptr;
  std::vector<int64_t> shape;
  int64_t N = 0, rows = 0;
};

std::string ReadDequantInputs(Ort::KernelContext& ctx, const std::string& op, DequantInputs* out) {
  Ort::ConstValue acc = ctx.GetInput(0), rs = ctx.GetInput(1), cs = ctx.GetInput(2);
  auto ai = acc.GetTensorTypeAndShapeInfo();
  auto ri = rs.GetTensorTypeAndShapeInfo();
  auto ci = cs.GetTensorTypeAndShapeInfo();
  const auto as = ai.GetShape();
  if (ai.GetElementType() != ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32 ||
      ri.GetElementType() != ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT ||
      ci.GetElementType() != ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT)
    return op + ": inputs must be (int32 acc, float row_scale, float col_scale)";
  if (as.empty()) return op + ": acc must have rank >= 1, got a scalar";
  const int64_t N = as.back();
  const int64_t rows = N > 0 ? static_cast<int64_t>(ai.GetElementCount()) / N : 0;
  const auto rshape = ri.GetShape();
  if (static_cast<int64_t>(ri.GetElementCount()) != rows || rshape.size() != as.size() || rshape.back() != 1)
    return op + ": row_scale must be acc's shape with the last dim 1: acc " + ShapeString(as) + ", row_scale " +
           ShapeString(rshape);
  const auto cshape = ci.GetShape();
  if (cshape.size() != 1 || cshape[0] != N)
    return op + ": col_scale must be [" + std::to_string(N) + "] to match acc " + ShapeString(as) + ", got " +
           ShapeString(cshape);
  if (ctx.GetInputCount() > 3) {
    Ort::ConstValue b = ctx.GetInput(3);
    if (b != nullptr) {
      auto bi = b.GetTensorTypeAndShapeInfo();
      const auto bshape = bi.GetShape();
      if (bi.GetElementType() != ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT || bshape.size() != 1 || bshape[0] != N)
        return op + ": bias must be float [" + std::to_string(N) + "] to match acc " + ShapeString(as) +
               ", got " + ShapeString(bshape);
      out->bias = b.GetTensorData<float>();
    }
  }
  out->acc = acc.GetTensorData<int32_t>();
  out->row_scale = rs.GetTensorData<float>();
  out->col_scale = cs.GetTensorData<float>();
  out->shape = as;
  out->N = N;
  out->rows = rows;
  return {};
}

struct DequantizeKernel {
  Isa isa = SelectIsa();
  int64_t head_size = 0;  // attribute head_size: y [B, N/D, S, D] (heads first)

  struct Job {
    const int32_t* acc;
    const float* row_scale;
    const float* col_scale;
    const float* bias;
    float* y;
    int64_t N;
    Isa isa;
    int64_t D = 0, S = 0;  // head_size only
    void Run(int64_t begin, int64_t end) const {
      if (D == 0) {
        DequantizeRows(acc, row_scale, col_scale, bias, y, begin, end, N, isa);
        return;
      }
      // the same element-wise operations, each head's D values of a row stored at [b, h, s, :]
      const int64_t H = N / D;
      for (int64_t r = begin; r < end; ++r) {
        const int64_t b = r / S, s = r % S;
        for (int64_t h = 0; h < H; ++h)
          DequantizeRows(acc + r * N + h * D, row_scale + r, col_scale + h * D,
                         bias != nullptr ? bias + h * D : nullptr, y + ((b * H + h) * S + s) * D, 0, 1, D, isa);
      }
    }
  };

  OrtStatusPtr ComputeV2(OrtKernelContext* context) {
    return Guarded("DequantizeRows", [&]() -> OrtStatusPtr {
      Ort::KernelContext ctx(context);
      DequantInputs in;
      if (std::string err = ReadDequantInputs(ctx, "DequantizeRows", &in); !err.empty()) return Error(err);
      const auto& as = in.shape;
      const int64_t N = in.N, rows = in.rows;
      if (head_size > 0 && (as.size() != 3 || N % head_size != 0))
        return Error("DequantizeRows: head_size " + std::to_string(head_size) + " needs acc [batch, sequence, N] "
                     "with N a multiple of it, got " + ShapeString(as));
      const std::vector<int64_t> ys =
          head_size > 0 ? std::vector<int64_t>{as[0], N / head_size, as[1], head_size} : as;
      Ort::UnownedValue y = ctx.GetOutput(0, ys);
      if (rows == 0) return nullptr;
      Job job{in.acc, in.row_scale, in.col_scale, in.bias, y.GetTensorMutableData<float>(), N, isa};
      if (head_size > 0) {
        job.D = head_size;
        job.S = as[1];
      }
      ParallelRows(ctx, job, rows, N);
      return nullptr;
    });
  }
};

struct DequantizeOp : Ort::CustomOpBase<DequantizeOp, DequantizeKernel, /*WithStatus=*/true> {
  DequantizeOp() {
    // acc [..., N] -> float [..., N]
    this->InferOutputShapeFn = [](const OrtCustomOp*, OrtShapeInferContext* raw) -> OrtStatusPtr {
      return Guarded("DequantizeRows shape inference", [&]() -> OrtStatusPtr {
        using Dim = Ort::ShapeInferContext::SymbolicInteger;
        Ort::ShapeInferContext ctx(&Ort::GetApi(), raw);
        const auto& shape = ctx.GetInputShape(0);
        const int64_t head_size = OptionalIntAttr(ctx, "head_size");
        if (head_size > 0 && shape.size() == 3) {
          const bool known = shape[2].IsInt() && shape[2].AsInt() >= 0;
          return SetOutputShape(raw, 0, ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT,
                                {shape[0], known ? Dim(shape[2].AsInt() / head_size) : Dim(int64_t{-1}), shape[1],
                                 Dim(head_size)});
        }
        return SetOutputShape(raw, 0, ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, {shape.begin(), shape.end()});
      });
    };
  }
  OrtStatusPtr CreateKernelV2(const OrtApi& api, const OrtKernelInfo* info, void** op_kernel) const {
    const int64_t head_size = IntAttr(api, info, "head_size", 0);
    if (head_size < 0)
      return Error("DequantizeRows: attribute head_size must be >= 0, got " + std::to_string(head_size));
    auto kernel = std::make_unique<DequantizeKernel>();
    kernel->head_size = head_size;
    *op_kernel = kernel.release();
    return nullptr;
  }
  const char* GetName() const { return "DequantizeRows"; }
  const char* GetExecutionProviderType() const { return nullptr; }
  size_t GetInputTypeCount() const { return 4; }
  OrtCustomOpInputOutputCharacteristic GetInputCharacteristic(size_t index) const {
    return index == 3 ? INPUT_OUTPUT_OPTIONAL : INPUT_OUTPUT_REQUIRED;
  }
  ONNXTensorElementDataType GetInputType(size_t index) const {
    return index == 0 ? ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32 : ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
  }
  size_t GetOutputTypeCount() const { return 1; }
  ONNXTensorElementDataType GetOutputType(size_t) const { return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT; }
};


// ------------------------------------------------------------------------------------------- RequantizeRows
// RequantizeRows(acc, row_scale, col_scale, bias?) -> (q uint8 [..., N], scale float [..., 1]): one Linear's
// DequantizeRows, then its activation (attribute activation: "gelu", gelu.h; or "" for none), then the next
// Linear's QuantizePerToken (attribute qmax), row by row through a buffer of N floats that stays in L1: the
// [rows, N] float tensor between them is never written. The same float operations as the three ops.
struct RequantizeKernel {
  Isa isa = SelectIsa();
  int qmax = kQuantMax;
  bool gelu = false;

  struct Job {
    const DequantInputs* in;
    uint8_t* q;
    float* scale;
    Isa isa;
    int qmax;
    bool gelu;
    void Run(int64_t begin, int64_t end) const {
      const int64_t N = in->N;
      std::vector<float> row(static_cast<size_t>(N));
      for (int64_t r = begin; r < end; ++r) {
        DequantizeRows(in->acc + r * N, in->row_scale + r, in->col_scale, in->bias, row.data(), 0, 1, N, isa);
        if (gelu) GeluRow(row.data(), row.data(), N, isa);
        QuantizeRows(row.data(), q + r * N, scale + r, 0, 1, N, isa, qmax);
      }
    }
  };

  OrtStatusPtr ComputeV2(OrtKernelContext* context) {
    return Guarded("RequantizeRows", [&]() -> OrtStatusPtr {
      Ort::KernelContext ctx(context);
      DequantInputs in;
      if (std::string err = ReadDequantInputs(ctx, "RequantizeRows", &in); !err.empty()) return Error(err);
      std::vector<int64_t> ss = in.shape;
      ss.back() = 1;
      Ort::UnownedValue q = ctx.GetOutput(0, in.shape), scale = ctx.GetOutput(1, ss);
      if (in.rows == 0) return nullptr;
      const Job job{&in, q.GetTensorMutableData<uint8_t>(), scale.GetTensorMutableData<float>(), isa, qmax, gelu};
      ParallelRows(ctx, job, in.rows, in.N);
      return nullptr;
    });
  }
};

struct RequantizeOp : Ort::CustomOpBase<RequantizeOp, RequantizeKernel, /*WithStatus=*/true> {
  RequantizeOp() {
    // acc [..., N] -> (uint8 [..., N], float [..., 1])
    this->InferOutputShapeFn = [](const OrtCustomOp*, OrtShapeInferContext* raw) -> OrtStatusPtr {
      return Guarded("RequantizeRows shape inference", [&]() -> OrtStatusPtr {
        using Dim = Ort::ShapeInferContext::SymbolicInteger;
        Ort::ShapeInferContext ctx(&Ort::GetApi(), raw);
        const auto& shape = ctx.GetInputShape(0);
        std::vector<Dim> dims(shape.begin(), shape.end());
        if (OrtStatusPtr st = SetOutputShape(raw, 0, ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8, dims)) return st;
        if (!dims.empty()) dims.back() = Dim(int64_t{1});
        return SetOutputShape(raw, 1, ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, dims);
      });
    };
  }
  OrtStatusPtr CreateKernelV2(const OrtApi& api, const OrtKernelInfo* info, void** op_kernel) const {
    const int64_t qmax = IntAttr(api, info, "qmax", kQuantMax);
    if (qmax < 1 || qmax > kQuantMax)
      return Error("RequantizeRows: attribute qmax must be in [1, 127], got " + std::to_string(qmax));
    const std::string activation = StringAttr(api, info, "activation", "");
    if (!activation.empty() && activation != "gelu")
      return Error("RequantizeRows: attribute activation must be \"gelu\" or absent, got \"" + activation + "\"");
    auto kernel = std::make_unique<RequantizeKernel>();
    kernel->qmax = static_cast<int>(qmax);
    kernel->gelu = activation == "gelu";
    *op_kernel = kernel.release();
    return nullptr;
  }
  const char* GetName() const { return "RequantizeRows"; }
  const char* GetExecutionProviderType() const { return nullptr; }
  size_t GetInputTypeCount() const { return 4; }
  OrtCustomOpInputOutputCharacteristic GetInputCharacteristic(size_t index) const {
    return index == 3 ? INPUT_OUTPUT_OPTIONAL : INPUT_OUTPUT_REQUIRED;
  }
  ONNXTensorElementDataType GetInputType(size_t index) const {
    return index == 0 ? ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32 : ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
  }
  size_t GetOutputTypeCount() const { return 2; }
  ONNXTensorElementDataType GetOutputType(size_t index) const {
    return index == 0 ? ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8 : ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
  }
};

}  // namespace

void AddDequantizeRows(Ort::CustomOpDomain* domain) {
  static DequantizeOp dequantize_op;
  domain->Add(&dequantize_op);
}

void AddRequantizeRows(Ort::CustomOpDomain* domain) {
  static RequantizeOp requantize_op;
  domain->Add(&requantize_op);
}

}  // namespace embedrt
