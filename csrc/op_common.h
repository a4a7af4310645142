// Shared by the op files (*_op.cc) of libembedrt_ops: errors, attribute reading, output shapes and the
// row-parallel runner. Each op file holds one op's schema, shape inference, kernel and registration; ops.cc
// registers them all (RegisterCustomOps) and exports the build facts.
//
// Build: pip install -e .   (or: embedrt build-ops [--cuda on])     Test: python -m pytest -q tests/native
//
// NOTE: the library is not linked against libonnxruntime (Python's onnxruntime does not export
// OrtGetApiBase for linking); the API table arrives through RegisterCustomOps. Every file includes the C++ API
// through this header, so that ORT_API_MANUAL_INIT is the same in all of them.
#pragma once

#define ORT_API_MANUAL_INIT
#include <onnxruntime_cxx_api.h>
#undef ORT_API_MANUAL_INIT

#include <atomic>
#include <cstdint>
#include <exception>
#include <string>
#include <vector>

#define EMBEDRT_EXPORT extern "C" __attribute__((visibility("default")))

namespace embedrt {

inline std::string ShapeString(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

inline OrtStatus* Error(const std::string& msg, OrtErrorCode code = ORT_INVALID_ARGUMENT) {
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
inline int64_t RowsPerTask(int64_t row_elems) {
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

// Declares output `index` as `type` [dims]: a non-negative int is a size, a string a symbolic dim.
// NOTE: ORT reports an unknown input dim as the int -1, and passing that on would declare a dim of size -1
// (a MatMulInteger after the op then fails shape inference): each one gets a fresh symbol instead.
inline OrtStatusPtr SetOutputShape(OrtShapeInferContext* raw, size_t index, ONNXTensorElementDataType type,
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

// An optional int attribute, `fallback` when absent.
inline int64_t IntAttr(const OrtApi& api, const OrtKernelInfo* info, const char* name, int64_t fallback) {
  int64_t value = fallback;
  if (OrtStatus* st = api.KernelInfoGetAttribute_int64(info, name, &value)) {
    api.ReleaseStatus(st);
    value = fallback;
  }
  return value;
}

// An optional string attribute, `fallback` when absent (or unreadable).
inline std::string StringAttr(const OrtApi& api, const OrtKernelInfo* info, const char* name,
                              const std::string& fallback) {
  size_t size = 0;
  if (OrtStatus* st = api.KernelInfoGetAttribute_string(info, name, nullptr, &size)) {
    api.ReleaseStatus(st);
    return fallback;
  }
  std::vector<char> buf(size);
  if (OrtStatus* st = api.KernelInfoGetAttribute_string(info, name, buf.data(), &size)) {
    api.ReleaseStatus(st);
    return fallback;
  }
  return std::string(buf.data());
}

// The same at shape inference: 0 when absent.
inline int64_t OptionalIntAttr(Ort::ShapeInferContext& ctx, const char* name) {
  try {
    return ctx.GetAttrInt(name);
  } catch (const Ort::Exception&) {
    return 0;
  }
}

// ------------------------------------------------------------------------------------------- registration
// Each op file adds its op (one static instance per process) to the ai.embedrt domain; ops.cc calls them.
void AddMeanPoolNormalize(Ort::CustomOpDomain* domain);
#ifdef EMBEDRT_WITH_CUDA
void AddMeanPoolNormalizeCuda(Ort::CustomOpDomain* domain);
#endif
void AddQuantizePerToken(Ort::CustomOpDomain* domain);
void AddDequantizeRows(Ort::CustomOpDomain* domain);
void AddRequantizeRows(Ort::CustomOpDomain* domain);
void AddPackedMatMul(Ort::CustomOpDomain* domain);
void AddPackedMatMulInteger(Ort::CustomOpDomain* domain);
void AddAttention(Ort::CustomOpDomain* domain);
void AddAddLayerNorm(Ort::CustomOpDomain* domain);

}  // namespace embedrt
