// ai.embedrt::PackedMatMulInteger (int8_gemm.h): schema, shape inference, CPU kernel, registration. The int8
// graph's MatMulInteger with its weights packed when the kernel is created.
//
// Build and test: pip install -e . && python -m pytest -q tests/native/test_int8_gemm.py
#include "op_common.h"

#include <algorithm>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "int8_gemm.h"
#include "mean_pool.h"

namespace embedrt {
namespace {

// The weight input's [K, N], or a message.
std::string Int8WeightShape(const Ort::ConstValue& w, int64_t* K, int64_t* N) {
  auto info = w.GetTensorTypeAndShapeInfo();
  const auto shape = info.GetShape();
  if (info.GetElementType() != ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8 || shape.size() != 2)
    return "PackedMatMulInteger: B must be int8 [K, N], got ONNX element type " +
           std::to_string(static_cast<int>(info.GetElementType())) + " shape " + ShapeString(shape);
  *K = shape[0];
  *N = shape[1];
  return {};
}

struct Int8GemmKernel {
  Isa isa = SelectIsa();
  std::unique_ptr<PackedInt8> packed;  // set at creation when B is a constant initializer

  // rows per task: a multiple of the 4-row tile; at most 64, so that a task's rows of A stay in L2
  static constexpr int64_t kRowsPerTask = 64;
  static unsigned Threads() {
    static const unsigned n = std::thread::hardware_concurrency();
    return n > 0 ? n : 1;
  }

  struct Job {
    const uint8_t* a;
    const PackedInt8* b;
    int32_t zp;
    int32_t* y;
    int64_t M, rows, per_group, groups, panels;
    Isa isa;
  };

  OrtStatusPtr ComputeV2(OrtKernelContext* context) {
    return Guarded("PackedMatMulInteger", [&]() -> OrtStatusPtr {
      Ort::KernelContext ctx(context);
      Ort::ConstValue a = ctx.GetInput(0);
      auto ai = a.GetTensorTypeAndShapeInfo();
      if (ai.GetElementType() != ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8)
        return Error("PackedMatMulInteger: A must be uint8, got ONNX element type " +
                     std::to_string(static_cast<int>(ai.GetElementType())));
      const auto as = ai.GetShape();
      if (as.empty()) return Error("PackedMatMulInteger: A must have rank >= 1, got a scalar");
      std::unique_ptr<PackedInt8> per_call;
      const PackedInt8* b = packed.get();
      if (b == nullptr) {  // B is not an initializer: pack it for this call
        Ort::ConstValue w = ctx.GetInput(1);
        int64_t k = 0, n = 0;
        const std::string err = Int8WeightShape(w, &k, &n);
        if (!err.empty()) return Error(err);
        per_call = std::make_unique<PackedInt8>(PackInt8Weights(w.GetTensorData<int8_t>(), k, n));
        b = per_call.get();
      }
      if (as.back() != b->K)
        return Error("PackedMatMulInteger: A " + ShapeString(as) + " does not match B [" + std::to_string(b->K) +
                     ", " + std::to_string(b->N) + "]: the last dim must be " + std::to_string(b->K));
      int32_t zp = 0;
      if (ctx.GetInputCount() > 2) {
        Ort::ConstValue z = ctx.GetInput(2);
        if (z != nullptr) {
          auto zi = z.GetTensorTypeAndShapeInfo();
          if (zi.GetElementType() != ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8 || zi.GetElementCount() != 1)
            return Error("PackedMatMulInteger: a_zero_point must be one uint8 (per-tensor), got ONNX element type " +
                         std::to_string(static_cast<int>(zi.GetElementType())) + " shape " +
                         ShapeString(zi.GetShape()));
          zp = z.GetTensorData<uint8_t>()[0];
        }
      }
      std::vector<int64_t> ys = as;
      ys.back() = b->N;
      Ort::UnownedValue y = ctx.GetOutput(0, ys);
      const int64_t M = b->K > 0 ? static_cast<int64_t>(ai.GetElementCount()) / b->K : 0;
      int64_t rows = 1;
      for (size_t i = 0; i + 1 < as.size(); ++i) rows *= as[i];
      if (rows == 0 || b->N == 0) return nullptr;
      int32_t* out = y.GetTensorMutableData<int32_t>();
      if (b->K == 0) {  // an empty sum
        std::fill(out, out + rows * b->N, 0);
        return nullptr;
      }
      // Tasks: row chunks of at most 64 rows times column groups (contiguous runs of panels), at least two per
      // thread when there are enough panels, so that one text (27 rows) still uses every thread.
      const int64_t panels = b->panels;
      const int64_t chunks = (M + kRowsPerTask - 1) / kRowsPerTask;
      const int64_t want = 2 * static_cast<int64_t>(Threads());
      const int64_t groups = std::min(panels, std::max<int64_t>(1, (want + chunks - 1) / chunks));
      const int64_t per_group = (panels + groups - 1) / groups;
      const int64_t per_chunk = ((M + chunks - 1) / chunks + 3) / 4 * 4;
      const Job job{a.GetTensorData<uint8_t>(), b, zp, out, M, per_chunk, per_group,
                    (panels + per_group - 1) / per_group, panels, isa};
      auto run = [](void* data, size_t task) {
        const Job& j = *static_cast<const Job*>(data);
        const int64_t chunk = static_cast<int64_t>(task) / j.groups, group = static_cast<int64_t>(task) % j.groups;
        const int64_t r0 = chunk * j.rows, p0 = group * j.per_group;
        Int8GemmBlock(j.a, *j.b, j.zp, j.y, r0, std::min(r0 + j.rows, j.M), p0, std::min(p0 + j.per_group, j.panels),
                      j.isa);
      };
      const int64_t tasks = ((M + per_chunk - 1) / per_chunk) * job.groups;
      if (tasks <= 1)
        run(const_cast<Job*>(&job), 0);
      else
        ctx.ParallelFor(run, static_cast<size_t>(tasks), 0, const_cast<Job*>(&job));
      return nullptr;
    });
  }
};

struct Int8GemmOp : Ort::CustomOpBase<Int8GemmOp, Int8GemmKernel, /*WithStatus=*/true> {
  Int8GemmOp() {
    // A [..., K], B [K, N] -> int32 [..., N]
    this->InferOutputShapeFn = [](const OrtCustomOp*, OrtShapeInferContext* raw) -> OrtStatusPtr {
      return Guarded("PackedMatMulInteger shape inference", [&]() -> OrtStatusPtr {
        using Dim = Ort::ShapeInferContext::SymbolicInteger;
        Ort::ShapeInferContext ctx(&Ort::GetApi(), raw);
        const auto& shape = ctx.GetInputShape(0);
        const auto& w = ctx.GetInputShape(1);
        if (shape.empty()) return Error("PackedMatMulInteger: A must have rank >= 1");
        if (w.size() != 2) return Error("PackedMatMulInteger: B must have rank 2 [K, N]");
        std::vector<Dim> dims(shape.begin(), shape.end());
        dims.back() = w[1];
        return SetOutputShape(raw, 0, ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32, dims);
      });
    };
  }
  OrtStatusPtr CreateKernelV2(const OrtApi&, const OrtKernelInfo* info, void** op_kernel) const {
    return Guarded("PackedMatMulInteger", [&]() -> OrtStatusPtr {
      auto kernel = std::make_unique<Int8GemmKernel>();
      Ort::ConstKernelInfo ki(info);
      int is_constant = 0;
      Ort::ConstValue w = ki.GetTensorConstantInput(1, &is_constant);
      if (is_constant && w != nullptr) {
        int64_t k = 0, n = 0;
        const std::string err = Int8WeightShape(w, &k, &n);
        if (!err.empty()) return Error(err);
        kernel->packed = std::make_unique<PackedInt8>(PackInt8Weights(w.GetTensorData<int8_t>(), k, n));
      }
      *op_kernel = kernel.release();
      return nullptr;
    });
  }
  const char* GetName() const { return "PackedMatMulInteger"; }
  const char* GetExecutionProviderType() const { return nullptr; }
  size_t GetInputTypeCount() const { return 3; }
  OrtCustomOpInputOutputCharacteristic GetInputCharacteristic(size_t index) const {
    return index == 2 ? INPUT_OUTPUT_OPTIONAL : INPUT_OUTPUT_REQUIRED;
  }
  ONNXTensorElementDataType GetInputType(size_t index) const {
    return index == 1 ? ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8 : ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8;
  }
  size_t GetOutputTypeCount() const { return 1; }
  ONNXTensorElementDataType GetOutputType(size_t) const { return ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32; }
};

}  // namespace

void AddPackedMatMulInteger(Ort::CustomOpDomain* domain) {
  static Int8GemmOp op;
  domain->Add(&op);
}

}  // namespace embedrt
