"""Reduced-precision variants of the fp32 graph: per-token int8 (CPU) and fp16 (GPU).

int8 scheme (measured in docs/quantization.md): every selected Linear ``y = x W + b`` becomes

    s_row = max(|x| over the hidden axis) / A            one scale per token: batch-invariant by construction
    q     = Round(x / s_row) + (A + 1)  -> uint8         u8 activations (s8 x s8 is ~6x slower in onnxruntime)
    acc   = MatMulInteger(q, W_s8, a_zero_point=A + 1)   int32
    y     = Cast(acc) * s_row * s_col + b                s_col = max |W[:, n]| / B: per-channel, symmetric

with (A, B) from the scheme (``INT8_SCHEMES``). Without VNNI, onnxruntime's u8 x s8 kernel (x86 AVX2 and
AVX-512BW) adds pairs of u8 * s8 products in a saturating int16 (pmaddubsw): 255 * 127 * 2 does not fit, so
the 8-bit x 8-bit scheme's int32 sums, and the vectors, depend on the CPU. ``w7a8`` (the default) keeps
|w| <= 63: a pair is at most 255 * 63 * 2 = 32,130 < 32,767, exact on every ISA.

Linears reading the same tensor (query/key/value) share one quantization. Optional SmoothQuant-style
per-channel smoothing (``alpha``) moves activation outliers into the weights using static factors from
calibration sentences, so the result stays batch-invariant. Roles are found from weight shapes:
``attention`` (K == N), ``ffn_up`` (K < N), ``ffn_down`` (K > N).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..modes import DequantizeOp, QuantizeOp
from ..runtime.native import OP_DOMAIN as NATIVE_DOMAIN

ROLES = ("attention", "ffn_up", "ffn_down")


@dataclass(frozen=True)
class Int8Scheme:
    """The integer ranges of one int8 scheme: activations q - zero_point in [-act_max, act_max] (u8 storage,
    zero point act_max + 1), weights in [-weight_max, weight_max] (s8)."""

    name: str
    act_max: int
    weight_max: int
    machine_independent: bool
    summary: str

    @property
    def act_zero_point(self) -> int:
        return self.act_max + 1

    @property
    def max_pair_sum(self) -> int:
        """The largest |u8 * s8 + u8 * s8| a pmaddubsw pair can reach: <= 32,767 means no saturation."""
        return 2 * (self.act_zero_point + self.act_max) * self.weight_max


INT8_SCHEMES = {
    s.name: s
    for s in (
        Int8Scheme(
            "w7a8",
            127,
            63,
            True,
            "per-token symmetric 8-bit u8 activations x per-channel symmetric 7-bit s8 weights "
            "(|w| <= 63), MatMulInteger: cannot saturate int16 on any ISA, the same int32 sums on every "
            "CPU",
        ),
        Int8Scheme(
            "w8a7",
            63,
            127,
            True,
            "per-token symmetric 7-bit u8 activations (zero point 64) x per-channel symmetric 8-bit s8 "
            "weights, MatMulInteger: cannot saturate int16 on any ISA, the same int32 sums on every CPU",
        ),
        Int8Scheme(
            "w8a8-vnni",
            127,
            127,
            False,
            "per-token symmetric 8-bit u8 activations x per-channel symmetric 8-bit s8 weights, "
            "MatMulInteger: exact only where onnxruntime's u8 x s8 kernel does not saturate (VNNI, AMX, "
            "ARM64); on AVX2 and AVX-512 without VNNI the int32 sums saturate and the vectors differ",
        ),
    )
}
DEFAULT_INT8_SCHEME = "w7a8"


def int8_scheme(name: str) -> Int8Scheme:
    """The scheme called ``name``.

    Raises:
        ValueError: an unknown name (the message lists the valid ones).
    """
    if name not in INT8_SCHEMES:
        raise ValueError(f"unknown int8 scheme {name!r}; valid choices: {', '.join(INT8_SCHEMES)}")
    return INT8_SCHEMES[name]


@dataclass
class Int8Config:
    """Which Linears become int8, and how."""

    exclude_roles: tuple[str, ...] = ("ffn_down",)
    exclude_layers: tuple[int, ...] = ()
    smooth_alpha: float | None = None
    smooth_roles: tuple[str, ...] = ("ffn_down",)
    fuse_shared_inputs: bool = True
    #: how each input is quantized per token (``modes.QuantizeOp``; its name is accepted too)
    quantize_op: QuantizeOp = QuantizeOp.OPS
    #: how each accumulator is rescaled to float (``modes.DequantizeOp``; its name is accepted too)
    dequantize_op: DequantizeOp = DequantizeOp.OPS
    #: the integer ranges (INT8_SCHEMES): "w7a8" (default), "w8a7", or the saturating opt-in "w8a8-vnni"
    scheme: str = DEFAULT_INT8_SCHEME

    def __post_init__(self) -> None:
        self.quantize_op = QuantizeOp.parse(self.quantize_op, "quantize_op")
        self.dequantize_op = DequantizeOp.parse(self.dequantize_op, "dequantize_op")

    def describe(self) -> dict:
        sch = int8_scheme(self.scheme)
        return {
            "scheme": sch.summary,
            "scheme_name": sch.name,
            "activation_max": sch.act_max,
            "activation_zero_point": sch.act_zero_point,
            "weight_max": sch.weight_max,
            "machine_independent": sch.machine_independent,
            "quantize_op": self.quantize_op.value,
            "dequantize_op": self.dequantize_op.value,
            "exclude_roles": list(self.exclude_roles),
            "exclude_layers": list(self.exclude_layers),
            "smooth_alpha": self.smooth_alpha,
            "smooth_roles": list(self.smooth_roles) if self.smooth_alpha else [],
            "batch_invariant": True,
        }


def _role(k: int, n: int) -> str:
    return "attention" if k == n else ("ffn_up" if k < n else "ffn_down")


def _layer_index(name: str) -> int | None:
    import re

    m = re.search(r"layers?\.(\d+)[/.]", name)
    return int(m.group(1)) if m else None


def find_linears(model) -> list[dict]:
    """MatMul nodes whose second input is a 2-D initializer inside the transformer (not the ST Dense head)."""
    inits = {i.name: i for i in model.graph.initializer}
    out = []
    for node in model.graph.node:
        if node.op_type != "MatMul" or node.input[1] not in inits:
            continue
        w = inits[node.input[1]]
        if len(w.dims) != 2 or not node.name.startswith("/transformer/"):
            continue
        k, n = int(w.dims[0]), int(w.dims[1])
        out.append(
            {
                "node": node,
                "weight": node.input[1],
                "k": k,
                "n": n,
                "role": _role(k, n),
                "layer": _layer_index(node.name),
            }
        )
    return out


def bias_add(graph, out: str, n: int) -> tuple[Any, str] | None:
    """The Linear's bias Add (``out + b``, b an initializer [n]) when it is ``out``'s only consumer: (the Add
    node, b's initializer name), or None."""
    users = [node for node in graph.node if out in node.input]
    if (
        len(users) != 1
        or users[0].op_type != "Add"
        or not users[0].name
        or out in {o.name for o in graph.output}
    ):
        return None
    other = [i for i in users[0].input if i != out]
    if len(other) != 1:
        return None
    name = other[0]
    inits = {i.name: i for i in graph.initializer}
    if name not in inits:
        # NOTE: the torch exporter deduplicates equal tensors (e.g. zero biases) into one initializer behind
        # Identity nodes
        producer = next((node for node in graph.node if name in node.output), None)
        if producer is not None and producer.op_type == "Identity":
            name = producer.input[0]
    if name not in inits or list(inits[name].dims) != [n]:
        return None
    return users[0], name


def calibrate_absmax(
    fp32_path: Path, tensors: list[str], feeds: list[dict[str, np.ndarray]]
) -> dict[str, np.ndarray]:
    """Per-channel max |x| of the given intermediate tensors over calibration batches."""
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(fp32_path))
    known = {o.name for o in model.graph.output}
    for t in tensors:
        if t not in known:
            model.graph.output.append(onnx.helper.make_empty_tensor_value_info(t))
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    result: dict[str, np.ndarray] = {}
    for feed in feeds:
        outs = sess.run(tensors, feed)
        mask = feed["attention_mask"].astype(bool)
        for name, value in zip(tensors, outs, strict=True):
            rows = value[mask] if value.ndim == 3 else value.reshape(-1, value.shape[-1])
            amax = np.abs(rows).max(axis=0)
            result[name] = amax if name not in result else np.maximum(result[name], amax)
    return result


def selected_linears(model, cfg: Int8Config) -> list[dict]:
    """The Linears ``cfg`` quantizes."""
    return [
        lin
        for lin in find_linears(model)
        if lin["role"] not in cfg.exclude_roles and lin["layer"] not in cfg.exclude_layers
    ]


def smoothing_stats(
    fp32_path: Path,
    cfg: Int8Config,
    calibration_feeds: list[dict[str, np.ndarray]] | None,
    linears: list[dict] | None = None,
) -> dict[str, np.ndarray]:
    """Per-channel max |x| of the inputs that ``cfg`` smooths, over the calibration batches ({} without
    smoothing). ``fp32_path`` must be a standard-op graph (it runs without the custom-op library)."""
    if cfg.smooth_alpha is None:
        return {}
    if linears is None:
        import onnx

        linears = selected_linears(onnx.load(str(fp32_path)), cfg)
    targets = sorted({lin["node"].input[0] for lin in linears if lin["role"] in cfg.smooth_roles})
    if not targets:
        return {}
    if not calibration_feeds:
        raise ValueError("smoothing needs calibration sentences")
    return calibrate_absmax(fp32_path, targets, calibration_feeds)


def quantize_int8(
    fp32_path: Path,
    out_path: Path,
    cfg: Int8Config,
    calibration_feeds: list[dict[str, np.ndarray]] | None = None,
    smooth: dict[str, np.ndarray] | None = None,
) -> dict:
    """Write the int8 variant of ``fp32_path`` to ``out_path``. Returns a description for the manifest.

    ``smooth``: the smoothing statistics (``smoothing_stats``), when already computed; otherwise they are
    calibrated on ``fp32_path`` with ``calibration_feeds``.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    sch = int8_scheme(cfg.scheme)
    model = onnx.load(str(fp32_path))
    if cfg.quantize_op == "blocked":
        from onnx import version_converter

        # NOTE: per-token scales as a blocked QuantizeLinear (block = the hidden size) need opset 21.
        model = version_converter.convert_version(model, 21)
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    linears = selected_linears(model, cfg)
    if smooth is None:
        smooth = smoothing_stats(fp32_path, cfg, calibration_feeds, linears)

    new_nodes: list = []
    new_inits: list = []
    replaced: dict[str, list] = {}  # original node name -> replacement nodes
    groups: dict[str, list[dict]] = defaultdict(list)
    for lin in linears:
        key = lin["node"].input[0] if cfg.fuse_shared_inputs else lin["node"].name
        groups[key].append(lin)

    def const(name: str, arr: np.ndarray):
        t = numpy_helper.from_array(arr, name)
        new_inits.append(t)
        return name

    eps = const("embedrt_q_eps", np.array(1e-12, dtype=np.float32))
    axes = const("embedrt_q_axes", np.array([-1], dtype=np.int64))
    zero = const("embedrt_q_zero", np.array(0.0, dtype=np.float32))
    one = const("embedrt_q_one", np.array(1.0, dtype=np.float32))
    # NOTE: the names of the 8-bit activations' constants are kept (the graphs stay byte for byte the same)
    amax_name = "embedrt_q_127" if sch.act_max == 127 else f"embedrt_q_{sch.act_max}"
    c127 = const(amax_name, np.array(float(sch.act_max), dtype=np.float32))
    zp_name = "embedrt_q_128f" if sch.act_zero_point == 128 else f"embedrt_q_{sch.act_zero_point}f"
    c128 = const(zp_name, np.array(float(sch.act_zero_point), dtype=np.float32))
    zp = const("embedrt_q_zp", np.array(sch.act_zero_point, dtype=np.uint8))
    graph_outputs = {o.name for o in graph.output}

    folded = 0
    for gi, (_key, members) in enumerate(groups.items()):
        x = members[0]["node"].input[0]
        p = f"/embedrt_q/g{gi}"
        nodes = []
        src = x
        factor = None
        if smooth and x in smooth:
            w_absmax = np.max(
                [np.abs(numpy_helper.to_array(inits[m["weight"]])).max(axis=1) for m in members], axis=0
            )
            a = cfg.smooth_alpha
            factor = (np.maximum(smooth[x], 1e-5) ** a / np.maximum(w_absmax, 1e-5) ** (1 - a)).astype(
                np.float32
            )
            factor = np.clip(factor, 1e-2, 1e2).astype(np.float32)
            inv = const(f"{p}/smooth_inv", (1.0 / factor).astype(np.float32))
            nodes.append(helper.make_node("Mul", [x, inv], [f"{p}/xs"], name=f"{p}/Smooth"))
            src = f"{p}/xs"
        reduce = (
            helper.make_node(
                "ReduceMax", [f"{p}/abs", axes], [f"{p}/amax"], name=f"{p}/ReduceMax", keepdims=1
            )
            if opset >= 18
            else helper.make_node(
                "ReduceMax", [f"{p}/abs"], [f"{p}/amax"], name=f"{p}/ReduceMax", axes=[-1], keepdims=1
            )
        )
        scale_nodes = [
            helper.make_node("Abs", [src], [f"{p}/abs"], name=f"{p}/Abs"),
            reduce,
            helper.make_node("Max", [f"{p}/amax", eps], [f"{p}/amax_eps"], name=f"{p}/Max"),
            helper.make_node("Div", [f"{p}/amax_eps", c127], [f"{p}/s_row"], name=f"{p}/Scale"),
        ]
        if cfg.quantize_op == "native":
            # the row scales and the uint8 rows in one node
            attrs = {} if sch.act_max == 127 else {"qmax": sch.act_max}
            nodes.append(
                helper.make_node(
                    "QuantizePerToken",
                    [src],
                    [f"{p}/xu8", f"{p}/s_row"],
                    name=f"{p}/QuantizePerToken",
                    domain=NATIVE_DOMAIN,
                    **attrs,
                )
            )
        elif cfg.quantize_op == "blocked":
            k = members[0]["k"]
            nodes += scale_nodes + [
                # zero point 128 of the scale's shape (uint8): QuantizeLinear wants one per block
                helper.make_node("Mul", [f"{p}/s_row", zero], [f"{p}/z0"], name=f"{p}/ZpShape"),
                helper.make_node("Add", [f"{p}/z0", c128], [f"{p}/z1"], name=f"{p}/Zp"),
                helper.make_node("Cast", [f"{p}/z1"], [f"{p}/zp"], name=f"{p}/ZpU8", to=TensorProto.UINT8),
                helper.make_node(
                    "QuantizeLinear",
                    [src, f"{p}/s_row", f"{p}/zp"],
                    [f"{p}/xu8"],
                    name=f"{p}/QuantizeLinear",
                    axis=-1,
                    block_size=k,
                ),
            ]
        else:
            nodes += scale_nodes + [
                helper.make_node("Div", [src, f"{p}/s_row"], [f"{p}/xq"], name=f"{p}/Div"),
                helper.make_node("Round", [f"{p}/xq"], [f"{p}/xr"], name=f"{p}/Round"),
                helper.make_node("Add", [f"{p}/xr", c128], [f"{p}/xo"], name=f"{p}/Offset"),
                helper.make_node("Cast", [f"{p}/xo"], [f"{p}/xu8"], name=f"{p}/CastU8", to=TensorProto.UINT8),
            ]
        for mi, m in enumerate(members):
            w = numpy_helper.to_array(inits[m["weight"]]).astype(np.float32)
            if factor is not None:
                w = w * factor[:, None]
            # from the fp32 weights, at the scheme's range (not a requantization of 8-bit weights)
            s_col = np.maximum(np.abs(w).max(axis=0), 1e-12) / float(sch.weight_max)
            wq = np.clip(np.round(w / s_col), -sch.weight_max, sch.weight_max).astype(np.int8)
            q = f"{p}/m{mi}"
            wname = const(f"{q}/w_s8", wq)
            sname = const(f"{q}/s_col", s_col.astype(np.float32))
            out = m["node"].output[0]
            if cfg.dequantize_op == "native":
                inputs = [f"{q}/acc", f"{p}/s_row", sname]
                add = bias_add(graph, out, m["n"])
                if add is not None:
                    # the Linear's bias goes into the op; its Add node is dropped
                    inputs.append(add[1])
                    out = add[0].output[0]
                    replaced[add[0].name] = []
                    folded += 1
                nodes += [
                    helper.make_node(
                        "MatMulInteger", [f"{p}/xu8", wname, zp], [f"{q}/acc"], name=f"{q}/MatMulInteger"
                    ),
                    helper.make_node(
                        "DequantizeRows", inputs, [out], name=f"{q}/DequantizeRows", domain=NATIVE_DOMAIN
                    ),
                ]
                replaced[m["node"].name] = []
                continue
            if cfg.dequantize_op == "fused":
                nodes.append(
                    helper.make_node(
                        "MatMulIntegerToFloat",
                        [f"{p}/xu8", wname, one, sname, zp],
                        [f"{q}/y_col"],
                        name=f"{q}/MatMulIntegerToFloat",
                        domain="com.microsoft",
                    )
                )
            else:
                nodes += [
                    helper.make_node(
                        "MatMulInteger", [f"{p}/xu8", wname, zp], [f"{q}/acc"], name=f"{q}/MatMulInteger"
                    ),
                    helper.make_node(
                        "Cast", [f"{q}/acc"], [f"{q}/accf"], name=f"{q}/CastF", to=TensorProto.FLOAT
                    ),
                    helper.make_node("Mul", [f"{q}/accf", sname], [f"{q}/y_col"], name=f"{q}/MulCol"),
                ]
            nodes.append(helper.make_node("Mul", [f"{q}/y_col", f"{p}/s_row"], [out], name=f"{q}/MulRow"))
            replaced[m["node"].name] = []
        replaced[members[0]["node"].name] = nodes

    for node in graph.node:
        if node.name in replaced:
            new_nodes.extend(replaced[node.name])
        else:
            new_nodes.append(node)
    used = {i for n in new_nodes for i in n.input}
    # Identity nodes left without a consumer by the bias folding
    new_nodes = [
        n
        for n in new_nodes
        if n.op_type != "Identity" or any(o in used or o in graph_outputs for o in n.output)
    ]
    used = {i for n in new_nodes for i in n.input}
    kept_inits = [i for i in graph.initializer if i.name in used]
    del graph.node[:]
    graph.node.extend(new_nodes)
    del graph.initializer[:]
    graph.initializer.extend(kept_inits + [i for i in new_inits if i.name in used])
    if cfg.dequantize_op == "fused" and not any(o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    native = "native" in (cfg.quantize_op, cfg.dequantize_op)
    if native and not any(o.domain == NATIVE_DOMAIN for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid(NATIVE_DOMAIN, 1))
    # NOTE: the checker cannot know the custom ops' schemas; the native graph is checked by running it against
    # the standard one instead (export/pipeline.py).
    if not native:
        onnx.checker.check_model(model)
    onnx.save(model, str(out_path))
    counts = defaultdict(int)
    for lin in linears:
        counts[lin["role"]] += 1
    return {
        **cfg.describe(),
        "quantized_linears": dict(counts),
        "total_linears": len(find_linears(model)) + len(linears),
        "folded_bias": folded,
    }


FP16_KEEP_FP32 = [
    "LayerNormalization",
    "Softmax",
    "ReduceSum",
    "ReduceMean",
    "ReduceL2",
    "ReduceMax",
    "Pow",
    "Sqrt",
    "Clip",
    "Div",
    "Erf",
    "CumSum",
    "ArgMax",
    "Gather",
    "GatherElements",
    "Where",
]


def convert_fp16(
    fp32_path: Path, out_path: Path, model_type: str = "bert", num_heads: int = 0, hidden_size: int = 0
) -> dict:
    """fp16 for GPU providers, the way onnxruntime builds it: the transformer optimizer in GPU mode
    (Attention, SkipLayerNormalization, BiasGelu, EmbedLayerNormalization fusions; exact GELU), then
    ``convert_float_to_float16(keep_io_types=True)``. Inputs and output keep their dtypes.

    An architecture the optimizer cannot fuse gets the unfused conversion instead, with LayerNorm, Softmax,
    GELU's erf, pooling and Normalize kept fp32 (``FP16_KEEP_FP32``); the scheme says which ran.
    """
    import onnx

    from .optimize import fuse_transformer_model

    try:
        model, fused = fuse_transformer_model(fp32_path, model_type, num_heads, hidden_size, use_gpu=True)
    except Exception as e:  # noqa: BLE001 - the optimizer is best-effort; the unfused conversion stays
        model, fused, error = None, {}, f"{type(e).__name__}: {e}"
    else:
        error = None
    if model is not None and fused.get("Attention"):
        # NOTE: after fusion the graph's float ops are the fused kernels (which accumulate in fp32 inside) and
        # MatMuls: onnxruntime's default block list leaves only the Casts at the inputs and the output.
        model.convert_float_to_float16(keep_io_types=True)
        model.save_model_to_file(str(out_path))
        return {
            "scheme": "onnxruntime transformer optimizer (GPU mode), then fp16 with fp32 inputs/outputs",
            "fused_operators": fused,
            "batch_invariant": True,
        }
    from onnxruntime.transformers.float16 import convert_float_to_float16

    fp16 = convert_float_to_float16(
        onnx.load(str(fp32_path)), keep_io_types=True, op_block_list=FP16_KEEP_FP32
    )
    onnx.save(fp16, str(out_path))
    why = error or f"the optimizer fused no Attention ({fused or 'nothing'})"
    return {
        "scheme": "fp16 weights and MatMul/Add, unfused ("
        + why
        + "); fp32 kept for "
        + ", ".join(FP16_KEEP_FP32),
        "fused_operators": fused,
        "batch_invariant": True,
    }
