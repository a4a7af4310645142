// ai.embedrt::PackedMatMul (dense.h): schema, shape inference, CPU kernel, registration. The fp32 Linear with
// its weights packed when the kernel is created.
//
// Build and test: pip install -e . && python -m pytest -q tests/native/test_dense_kernel.py tests/native/test_encoder_fused.py
#include "op_common.h"

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include "dense.h"
#include "gelu.h"
#include "mean_pool.h"

namespace embedrt {
namespace {

// ------------------------------------------------------------------------------------------- PackedMatMul
// x [..., K] @ W [K, N] (+ bias [N]) with W packed when the kernel is created (dense.h), CPU only.

struct AlignedFree {
  void operator()(float* p) const { std::free(p); }
};
using Packed = std::unique_ptr<float, AlignedFree>;

Packed PackWeights(const float* w, int64_t K, int64_t N, Isa isa) {
  const size_t bytes = (static_cast<size_t>(PackedDenseSize(K, N)) * sizeof(float) + 63) / 64 * 64;
  Packed out(static_cast<float*>(std::aligned_alloc(64, bytes > 0 ? bytes : 64)));
  if (!out) throw std::bad_alloc();
  PackDenseWeights(w, K, N, out.get(), isa);
  return out;
}

// The weight input's [K, N], or a message.
std::string WeightShape(const Ort::ConstValue& w, int64_t* K, int64_t* N) {
  auto info = w.GetTensorTypeAndShapeInfo();
  const auto shape = info.GetShape();
  if (info.GetElementType() != ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT || shape.size() != 2)
    return "PackedMatMul: W must be float32 [K, N], got ONNX element type " +
           std::to_string(static_cast<int>(info.GetElementType())) + " shape " + ShapeString(shape);
  *K = shape[0];
  *N = shape[1];
  return {};
}

struct DenseKernel {
  Isa isa = SelectIsa();
  Packed packed;  // set at creation when W is a constant initializer
  int64_t K = 0, N = 0;
  int64_t head_size = 0;  // attribute head_size: output [B, N/D, S, D]
  bool heads_in = false;  // attribute heads_in: input [B, H, S, D]
  bool gelu = false;      // attribute activation = "gelu": y = Gelu(x @ W + b) (gelu.h), plain layout only

  static constexpr int64_t kRowsPerTask = 4 * kDenseRows;
  static unsigned Threads() {
    static const unsigned n = std::thread::hardware_concurrency();
    return n > 0 ? n : 1;
  }

  struct Job {
    const float* x;
    const float* packed;
    const float* bias;
    float* y;
    int64_t M, K, N;
    int64_t rows;       // rows per chunk
    int64_t per_group;  // panels per column group
    int64_t groups, panels;
    DenseLayout layout;
    Isa isa;
    bool gelu;
  };

  OrtStatusPtr ComputeV2(OrtKernelContext* context) {
    return Guarded("PackedMatMul", [&]() -> OrtStatusPtr {
      Ort::KernelContext ctx(context);
      Ort::ConstValue x = ctx.GetInput(0);
      auto xi = x.GetTensorTypeAndShapeInfo();
      if (xi.GetElementType() != ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT)
        return Error("PackedMatMul: x must be float32, got ONNX element type " +
                     std::to_string(static_cast<int>(xi.GetElementType())));
      const auto xs = xi.GetShape();
      if (xs.empty()) return Error("PackedMatMul: x must have rank >= 1, got a scalar");
      if (heads_in && xs.size() != 4)
        return Error("PackedMatMul: heads_in=1 needs x [batch, heads, sequence, head_size], got " + ShapeString(xs));
      if (head_size > 0 && xs.size() != 3)
        return Error("PackedMatMul: head_size needs x [batch, sequence, K], got " + ShapeString(xs));
      Packed per_call;
      const float* weights = packed.get();
      int64_t k = K, n = N;
      if (weights == nullptr) {  // W is not an initializer: pack it for this call
        Ort::ConstValue w = ctx.GetInput(1);
        const std::string err = WeightShape(w, &k, &n);
        if (!err.empty()) return Error(err);
        per_call = PackWeights(w.GetTensorData<float>(), k, n, isa);
        weights = per_call.get();
      }
      const int64_t x_k = heads_in ? xs[1] * xs[3] : xs.back();
      if (x_k != k)
        return Error("PackedMatMul: x " + ShapeString(xs) + " does not match W [" + std::to_string(k) + ", " +
                     std::to_string(n) + "]: " + (heads_in ? "heads x head_size" : "the last dim") + " must be " +
                     std::to_string(k));
      if (head_size > 0 && n % head_size != 0)
        return Error("PackedMatMul: head_size " + std::to_string(head_size) + " does not divide N = " +
                     std::to_string(n));
      const float* bias = nullptr;
      if (ctx.GetInputCount() > 2) {
        Ort::ConstValue b = ctx.GetInput(2);
        if (b != nullptr) {
          auto bi = b.GetTensorTypeAndShapeInfo();
          const auto bshape = bi.GetShape();
          if (bi.GetElementType() != ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT || bshape.size() != 1 || bshape[0] != n)
            return Error("PackedMatMul: bias must be float [" + std::to_string(n) + "], got " + ShapeString(bshape));
          bias = b.GetTensorData<float>();
        }
      }
      std::vector<int64_t> ys;
      DenseLayout layout;
      if (heads_in) {
        ys = {xs[0], xs[2], n};
      } else if (head_size > 0) {
        ys = {xs[0], n / head_size, xs[1], head_size};
        layout = {head_size, xs[1]};
      } else {
        ys = xs;
        ys.back() = n;
      }
      // NOTE: rows from the shape, not from elements / K: with K = 0 there are rows and no elements
      int64_t rows = 1;
      for (int64_t d : ys) rows *= d;
      rows = n > 0 ? rows / n : 0;
      const int64_t M = k > 0 ? static_cast<int64_t>(xi.GetElementCount()) / k : 0;
      Ort::UnownedValue y = ctx.GetOutput(0, ys);
      if (rows == 0 || n == 0) return nullptr;
      float* out = y.GetTensorMutableData<float>();
      if (k == 0) {  // an empty sum: the bias alone (plain layouts: head_size needs K > 0 to make heads)
        for (int64_t r = 0; r < rows; ++r) {
          for (int64_t c = 0; c < n; ++c) out[r * n + c] = bias != nullptr ? bias[c] : 0.0f;
          if (gelu) GeluRow(out + r * n, out + r * n, n, isa);
        }
        return nullptr;
      }
      const float* input = x.GetTensorData<float>();
      std::vector<float> merged;
      if (heads_in) {  // [B, H, S, D] -> [B, S, H*D]: rows of the tile kernel
        merged.resize(static_cast<size_t>(M * k));
        GatherHeads(input, merged.data(), xs[0], xs[1], xs[2], xs[3]);
        input = merged.data();
      }
      // Tasks: near-equal row chunks of at most 4 tiles, times column groups. Few groups, each a contiguous run
      // of panels: a task prefetches its next panel while it computes one (1.56 ms for the 36 Linears of
      // MiniLM at 27 rows with 4 groups, 1.79 ms with 12).
      const int64_t panels = (n + kDensePanel - 1) / kDensePanel;
      const int64_t chunks = (M + kRowsPerTask - 1) / kRowsPerTask;
      const int64_t groups = std::min(panels, std::max<int64_t>(4, 2 * static_cast<int64_t>(Threads())));
      const int64_t per_group = (panels + groups - 1) / groups;
      const Job job{input, weights, bias, out, M, k, n, (M + chunks - 1) / chunks,
                    per_group, (panels + per_group - 1) / per_group, panels, layout, isa, gelu};
      auto run = [](void* data, size_t task) {
        const Job& j = *static_cast<const Job*>(data);
        const int64_t chunk = static_cast<int64_t>(task) / j.groups, group = static_cast<int64_t>(task) % j.groups;
        const int64_t r0 = chunk * j.rows, p0 = group * j.per_group;
        const int64_t r1 = std::min(r0 + j.rows, j.M), p1 = std::min(p0 + j.per_group, j.panels);
        DenseBlock(j.x, j.packed, j.bias, j.y, j.K, j.N, r0, r1, p0, p1, j.layout, j.isa);
        if (j.gelu) {  // the epilogue, on the block this task just wrote (still in cache)
          const int64_t c0 = p0 * kDensePanel, c1 = std::min(p1 * kDensePanel, j.N);
          for (int64_t r = r0; r < r1; ++r) GeluRow(j.y + r * j.N + c0, j.y + r * j.N + c0, c1 - c0, j.isa);
        }
      };
      const int64_t tasks = chunks * job.groups;
      if (tasks <= 1)
        run(const_cast<Job*>(&job), 0);
      else
        ctx.ParallelFor(run, static_cast<size_t>(tasks), 0, const_cast<Job*>(&job));
      return nullptr;
    });
  }
};

struct DenseOp : Ort::CustomOpBase<DenseOp, DenseKernel, /*WithStatus=*/true> {
  DenseOp() {
    // x [..., K], W [K, N] -> float [..., N]
    this->InferOutputShapeFn = [](const OrtCustomOp*, OrtShapeInferContext* raw) -> OrtStatusPtr {
      return Guarded("PackedMatMul shape inference", [&]() -> OrtStatusPtr {
        using Dim = Ort::ShapeInferContext::SymbolicInteger;
        Ort::ShapeInferContext ctx(&Ort::GetApi(), raw);
        const auto& shape = ctx.GetInputShape(0);
        const auto& w = ctx.GetInputShape(1);
        if (shape.empty()) return Error("PackedMatMul: x must have rank >= 1");
        if (w.size() != 2) return Error("PackedMatMul: W must have rank 2 [K, N]");
        const int64_t head_size = OptionalIntAttr(ctx, "head_size");
        const int64_t heads_in = OptionalIntAttr(ctx, "heads_in");
        std::vector<Dim> dims(shape.begin(), shape.end());
        if (heads_in == 1 && shape.size() == 4) {
          dims = {shape[0], shape[2], w[1]};
        } else if (head_size > 0 && shape.size() == 3 && w[1].IsInt() && w[1].AsInt() >= 0) {
          dims = {shape[0], Dim(w[1].AsInt() / head_size), shape[1], Dim(head_size)};
        } else {
          dims.back() = w[1];
        }
        return SetOutputShape(raw, 0, ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, dims);
      });
    };
  }
  OrtStatusPtr CreateKernelV2(const OrtApi& api, const OrtKernelInfo* info, void** op_kernel) const {
    return Guarded("PackedMatMul", [&]() -> OrtStatusPtr {
      auto kernel = std::make_unique<DenseKernel>();
      kernel->head_size = IntAttr(api, info, "head_size", 0);
      const int64_t heads_in = IntAttr(api, info, "heads_in", 0);
      if (kernel->head_size < 0 || kernel->head_size % 16 != 0)
        return Error("PackedMatMul: attribute head_size must be 0 or a positive multiple of 16, got " +
                     std::to_string(kernel->head_size));
      if (heads_in != 0 && heads_in != 1)
        return Error("PackedMatMul: attribute heads_in must be 0 or 1, got " + std::to_string(heads_in));
      if (heads_in == 1 && kernel->head_size > 0)
        return Error("PackedMatMul: heads_in=1 and head_size > 0 together are not supported");
      kernel->heads_in = heads_in == 1;
      const std::string activation = StringAttr(api, info, "activation", "");
      if (!activation.empty() && activation != "gelu")
        return Error("PackedMatMul: attribute activation must be \"gelu\" or absent, got \"" + activation + "\"");
      kernel->gelu = activation == "gelu";
      if (kernel->gelu && (kernel->head_size > 0 || kernel->heads_in))
        return Error("PackedMatMul: activation=\"gelu\" needs the plain layout (no head_size, no heads_in)");
      Ort::ConstKernelInfo ki(info);
      int is_constant = 0;
      Ort::ConstValue w = ki.GetTensorConstantInput(1, &is_constant);
      if (is_constant && w != nullptr) {
        const std::string err = WeightShape(w, &kernel->K, &kernel->N);
        if (!err.empty()) return Error(err);
        kernel->packed = PackWeights(w.GetTensorData<float>(), kernel->K, kernel->N, kernel->isa);
      }
      *op_kernel = kernel.release();
      return nullptr;
    });
  }
  const char* GetName() const { return "PackedMatMul"; }
  const char* GetExecutionProviderType() const { return nullptr; }
  size_t GetInputTypeCount() const { return 3; }
  OrtCustomOpInputOutputCharacteristic GetInputCharacteristic(size_t index) const {
    return index == 2 ? INPUT_OUTPUT_OPTIONAL : INPUT_OUTPUT_REQUIRED;
  }
  ONNXTensorElementDataType GetInputType(size_t) const { return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT; }
  size_t GetOutputTypeCount() const { return 1; }
  ONNXTensorElementDataType GetOutputType(size_t) const { return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT; }
};

}  // namespace

void AddPackedMatMul(Ort::CustomOpDomain* domain) {
  static DenseOp dense_op;
  domain->Add(&dense_op);
}

}  // namespace embedrt
