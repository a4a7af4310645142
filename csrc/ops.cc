// ONNX Runtime custom-op library: ai.embedrt::MeanPoolNormalize (CPU kernel, plus CUDA when built with nvcc),
// ai.embedrt::QuantizePerToken / DequantizeRows (CPU), the per-token int8 chains of the int8 variant, and
// ai.embedrt::PackedMatMul (CPU), the fp32 Linear with weights packed at load (dense.h).
//
// Build: pip install -e .   (or: embedrt build-ops [--cuda on])     Test: python -m pytest -q tests/native
// Load:  so = onnxruntime.SessionOptions(); so.register_custom_ops_library(path_to_libembedrt_ops.so)
//
//   MeanPoolNormalize(token_embeddings: float|float16 [B,T,H], attention_mask: int64 [B,T]) -> float [B,H]
//     attributes: mode = "mean" (default) | "mean_sqrt_len" | "max" | "cls";  normalize = 0 (default) | 1
//
// The whole cost and the numbers are described in mean_pool.h / mean_pool_cpu.cc / mean_pool_cuda.cu.
// NOTE: the library is not linked against libonnxruntime (Python's onnxruntime does not export
// OrtGetApiBase for linking); the API table arrives through RegisterCustomOps.
#define ORT_API_MANUAL_INIT
#include <onnxruntime_cxx_api.h>
#undef ORT_API_MANUAL_INIT

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "dense.h"
#include "mean_pool.h"
#include "quant.h"

#define EMBEDRT_EXPORT extern "C" __attribute__((visibility("default")))

namespace embedrt {
namespace {

constexpr const char* kDomain = "ai.embedrt";
constexpr const char* kOpName = "MeanPoolNormalize";
constexpr const char* kValidModes = "'mean', 'mean_sqrt_len', 'max', 'cls'";

std::string ShapeString(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

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
  size_t size = 0;
  std::string mode = "mean";
  if (OrtStatus* st = api.KernelInfoGetAttribute_string(info, "mode", nullptr, &size)) {
    api.ReleaseStatus(st);  // absent: default "mean"
  } else {
    std::vector<char> buf(size);
    if (OrtStatus* st2 = api.KernelInfoGetAttribute_string(info, "mode", buf.data(), &size)) {
      api.ReleaseStatus(st2);
      return "MeanPoolNormalize: could not read attribute mode";
    }
    mode.assign(buf.data());
  }
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

OrtStatus* Error(const std::string& msg, OrtErrorCode code = ORT_INVALID_ARGUMENT) {
  return Ort::Status(msg.c_str(), code).release();
}

// Runs `body` (returning a status) with exceptions turned into a status whose message starts with `where`.
template <typename Body>
OrtStatusPtr Guarded(const std::string& where, Body&& body) {
  try {
    return body();
  } catch (const Ort::Exception& e) {
    return Error(where + ": " + e.what(), e.GetOrtErrorCode());
  } catch (const std::exception& e) {
    return Error(where + ": " + e.what(), ORT_FAIL);
  }
}

// ------------------------------------------------------------------------------------------- row parallelism
// Rows of ~64k elements per task, so that small tensors do not pay for thread hand-off.
int64_t RowsPerTask(int64_t row_elems) {
  const int64_t per_task = (int64_t{1} << 16) / (row_elems > 0 ? row_elems : 1);
  return per_task < 1 ? 1 : per_task;
}

// Calls job.Run(begin, end) on row ranges covering [0, rows): inline for one range, else on ORT's intra-op pool.
// Every kernel here works on independent rows.
template <typename Job>
void ParallelRows(Ort::KernelContext& ctx, const Job& job, int64_t rows, int64_t row_elems) {
  struct Ranges {
    const Job* job;
    int64_t per_task, rows;
  } ranges{&job, RowsPerTask(row_elems), rows};
  auto run = [](void* data, size_t task) {
    const Ranges& r = *static_cast<const Ranges*>(data);
    const int64_t begin = static_cast<int64_t>(task) * r.per_task;
    r.job->Run(begin, begin + r.per_task < r.rows ? begin + r.per_task : r.rows);
  };
  const int64_t tasks = (rows + ranges.per_task - 1) / ranges.per_task;
  if (tasks <= 1) {
    run(&ranges, 0);
  } else {
    ctx.ParallelFor(run, static_cast<size_t>(tasks), 0, &ranges);
  }
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

// Declares output `index` as `type` [dims]: a non-negative int is a size, a string a symbolic dim.
// NOTE: ORT reports an unknown input dim as the int -1, and passing that on would declare a dim of size -1
// (a MatMulInteger after the op then fails shape inference): each one gets a fresh symbol instead.
OrtStatusPtr SetOutputShape(OrtShapeInferContext* raw, size_t index, ONNXTensorElementDataType type,
                            const std::vector<Ort::ShapeInferContext::SymbolicInteger>& dims) {
  static std::atomic<uint64_t> unknown{0};
  const OrtApi& api = Ort::GetApi();
  OrtTensorTypeAndShapeInfo* info = nullptr;
  if (OrtStatus* st = api.CreateTensorTypeAndShapeInfo(&info)) return st;
  std::vector<int64_t> ints;
  std::vector<std::string> fresh;
  fresh.reserve(dims.size());  // NOTE: no reallocation: names points into it
  std::vector<const char*> names;
  for (const auto& d : dims) {
    if (d.IsInt() && d.AsInt() >= 0) {
      ints.push_back(d.AsInt());
      names.push_back("");
    } else {
      ints.push_back(-1);
      if (d.IsInt()) fresh.push_back("embedrt_unk_" + std::to_string(unknown++));
      names.push_back(d.IsInt() ? fresh.back().c_str() : d.AsSym());
    }
  }
  OrtStatus* st = api.SetTensorElementType(info, type);
  if (st == nullptr) st = api.SetDimensions(info, ints.data(), ints.size());
  if (st == nullptr) st = api.SetSymbolicDimensions(info, names.data(), names.size());
  if (st == nullptr) st = api.ShapeInferContext_SetOutputTypeShape(raw, index, info);
  api.ReleaseTensorTypeAndShapeInfo(info);
  return st;
}

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


// An optional int attribute, `fallback` when absent.
int64_t IntAttr(const OrtApi& api, const OrtKernelInfo* info, const char* name, int64_t fallback) {
  int64_t value = fallback;
  if (OrtStatus* st = api.KernelInfoGetAttribute_int64(info, name, &value)) {
    api.ReleaseStatus(st);
    value = fallback;
  }
  return value;
}

// The same at shape inference: 0 when absent.
int64_t OptionalIntAttr(Ort::ShapeInferContext& ctx, const char* name) {
  try {
    return ctx.GetAttrInt(name);
  } catch (const Ort::Exception&) {
    return 0;
  }
}

// ------------------------------------------------------------------------------------------- int8 ops
// QuantizePerToken and DequantizeRows (quant.h): the per-token int8 chains of the int8 variant, CPU only.

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
      Ort::ConstValue acc = ctx.GetInput(0), rs = ctx.GetInput(1), cs = ctx.GetInput(2);
      auto ai = acc.GetTensorTypeAndShapeInfo();
      auto ri = rs.GetTensorTypeAndShapeInfo();
      auto ci = cs.GetTensorTypeAndShapeInfo();
      const auto as = ai.GetShape();
      if (ai.GetElementType() != ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32 ||
          ri.GetElementType() != ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT ||
          ci.GetElementType() != ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT)
        return Error("DequantizeRows: inputs must be (int32 acc, float row_scale, float col_scale)");
      if (as.empty()) return Error("DequantizeRows: acc must have rank >= 1, got a scalar");
      const int64_t N = as.back();
      const int64_t rows = N > 0 ? static_cast<int64_t>(ai.GetElementCount()) / N : 0;
      const auto rshape = ri.GetShape();
      if (static_cast<int64_t>(ri.GetElementCount()) != rows || rshape.size() != as.size() || rshape.back() != 1)
        return Error("DequantizeRows: row_scale must be acc's shape with the last dim 1: acc " + ShapeString(as) +
                     ", row_scale " + ShapeString(rshape));
      const auto cshape = ci.GetShape();
      if (cshape.size() != 1 || cshape[0] != N)
        return Error("DequantizeRows: col_scale must be [" + std::to_string(N) + "] to match acc " +
                     ShapeString(as) + ", got " + ShapeString(cshape));
      const float* bias = nullptr;
      if (ctx.GetInputCount() > 3) {
        Ort::ConstValue b = ctx.GetInput(3);
        if (b != nullptr) {
          auto bi = b.GetTensorTypeAndShapeInfo();
          const auto bshape = bi.GetShape();
          if (bi.GetElementType() != ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT || bshape.size() != 1 || bshape[0] != N)
            return Error("DequantizeRows: bias must be float [" + std::to_string(N) + "] to match acc " +
                         ShapeString(as) + ", got " + ShapeString(bshape));
          bias = b.GetTensorData<float>();
        }
      }
      if (head_size > 0 && (as.size() != 3 || N % head_size != 0))
        return Error("DequantizeRows: head_size " + std::to_string(head_size) + " needs acc [batch, sequence, N] "
                     "with N a multiple of it, got " + ShapeString(as));
      const std::vector<int64_t> ys =
          head_size > 0 ? std::vector<int64_t>{as[0], N / head_size, as[1], head_size} : as;
      Ort::UnownedValue y = ctx.GetOutput(0, ys);
      if (rows == 0) return nullptr;
      Job job{acc.GetTensorData<int32_t>(), rs.GetTensorData<float>(), cs.GetTensorData<float>(), bias,
              y.GetTensorMutableData<float>(), N, isa};
      if (head_size > 0) {
        job.D = head_size;
        job.S = as[1];
      }
      ParallelRows(ctx, job, rows, N);
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

// ------------------------------------------------------------------------------------------- PackedMatMul
// x [..., K] @ W [K, N] (+ bias [N]) with W packed when the kernel is created (dense.h), CPU only.

struct AlignedFree {
  void operator()(float* p) const { std::free(p); }
};
using Packed = std::unique_ptr<float, AlignedFree>;

Packed PackWeights(const float* w, int64_t K, int64_t N) {
  const size_t bytes = (static_cast<size_t>(PackedDenseSize(K, N)) * sizeof(float) + 63) / 64 * 64;
  Packed out(static_cast<float*>(std::aligned_alloc(64, bytes > 0 ? bytes : 64)));
  if (!out) throw std::bad_alloc();
  PackDenseWeights(w, K, N, out.get());
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
        per_call = PackWeights(w.GetTensorData<float>(), k, n);
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
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t c = 0; c < n; ++c) out[r * n + c] = bias != nullptr ? bias[c] : 0.0f;
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
                    per_group, (panels + per_group - 1) / per_group, panels, layout, isa};
      auto run = [](void* data, size_t task) {
        const Job& j = *static_cast<const Job*>(data);
        const int64_t chunk = static_cast<int64_t>(task) / j.groups, group = static_cast<int64_t>(task) % j.groups;
        const int64_t r0 = chunk * j.rows, p0 = group * j.per_group;
        DenseBlock(j.x, j.packed, j.bias, j.y, j.K, j.N, r0, std::min(r0 + j.rows, j.M), p0,
                   std::min(p0 + j.per_group, j.panels), j.layout, j.isa);
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
      Ort::ConstKernelInfo ki(info);
      int is_constant = 0;
      Ort::ConstValue w = ki.GetTensorConstantInput(1, &is_constant);
      if (is_constant && w != nullptr) {
        const std::string err = WeightShape(w, &kernel->K, &kernel->N);
        if (!err.empty()) return Error(err);
        kernel->packed = PackWeights(w.GetTensorData<float>(), kernel->K, kernel->N);
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
}  // namespace embedrt

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
  static PoolOp<CpuKernel> cpu_op(nullptr);
  static QuantizeOp quantize_op;
  static DequantizeOp dequantize_op;
  static DenseOp dense_op;
#ifdef EMBEDRT_WITH_CUDA
  static PoolOp<CudaKernel> cuda_op("CUDAExecutionProvider");
#endif
  // NOTE: ORT keeps a pointer to the domain for the session's lifetime: keep one per process, shared.
  static std::mutex mu;
  static std::vector<std::unique_ptr<Ort::CustomOpDomain>> domains;
  try {
    std::lock_guard<std::mutex> lock(mu);
    auto domain = std::make_unique<Ort::CustomOpDomain>(kDomain);
    domain->Add(&cpu_op);
    domain->Add(&quantize_op);
    domain->Add(&dequantize_op);
    domain->Add(&dense_op);
#ifdef EMBEDRT_WITH_CUDA
    domain->Add(&cuda_op);
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
