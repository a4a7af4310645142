"""The graph rewrites behind the native graphs (``export/fuse.py``), on ONNX protos in place. None changes
the numbers: each replaces a run-time computation or a chain of standard ops by a constant or one native op
that does the same float operations in the same order.

- ``fold_reshapes``: constant ``Reshape`` targets instead of the shape arithmetic on the activations;
- ``pack_linears``: every Linear (``MatMul`` by a weight initializer, + its bias ``Add``) as one
  ``ai.embedrt::PackedMatMul``;
- ``fold_head_transposes``: the attention's native ops write and read the heads-first layout themselves.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: (batch, sequence) sizes at which fold_reshapes evaluates the shape arithmetic
_FOLD_SIZES = ((1, 3), (2, 5), (3, 11))


def fold_reshapes(model) -> int:
    """Give every ``Reshape`` whose target shape the graph computes at run time (``Shape``, ``Gather``,
    ``Unsqueeze``, ``Concat`` ... on the activations) a constant target instead, with 0 ("this dim of the
    input") and -1 ("the rest") for the dims that vary; then drop the nodes nobody uses any more. Returns the
    Reshapes made constant.

    The traced graph recomputes each attention Reshape's target from the input's shape: four small nodes per
    Reshape, run on every call, about 12% of a single text's kernel time. The targets are found by running
    the shape arithmetic (only that part of the graph) at three (batch, sequence) sizes: a target dim that
    stays the same is a constant, one that equals the input's dim at the same index every time is 0, and one
    other dim at most becomes -1; a Reshape that fits none of that keeps its computed target. The rewritten
    graph is checked against the probe like every native graph.
    """
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    g = model.graph
    inits = {t.name for t in g.initializer}
    producers = {o: n for n in g.node for o in n.output}
    targets = []
    for node in g.node:
        if node.op_type != "Reshape" or node.domain not in ("", "ai.onnx") or len(node.input) < 2:
            continue
        if any(a.name == "allowzero" and a.i == 1 for a in node.attribute):
            continue
        src = producers.get(node.input[1])
        if node.input[1] in inits or src is None or src.op_type == "Constant":
            continue
        targets.append(node)
    if not targets:
        return 0
    probes = []
    for i, node in enumerate(targets):
        probes.append(helper.make_node("Shape", [node.input[0]], [f"embedrt_fold_in_{i}"]))
    wanted = [t.input[1] for t in targets] + [p.output[0] for p in probes]
    # the part of the graph that computes `wanted`
    needed, stack = set(), list(wanted)
    by_output = {**producers, **{p.output[0]: p for p in probes}}
    while stack:
        name = stack.pop()
        node = by_output.get(name)
        if node is None or id(node) in needed:
            continue
        needed.add(id(node))
        stack.extend(i for i in node.input if i)
    sliced = [n for n in list(g.node) + probes if id(n) in needed]
    if any(n.domain not in ("", "ai.onnx") for n in sliced):
        return 0
    used = {i for n in sliced for i in n.input}
    sub = helper.make_graph(
        sliced,
        "shapes",
        [i for i in g.input if i.name in used],
        [helper.make_tensor_value_info(w, TensorProto.INT64, None) for w in dict.fromkeys(wanted)],
        [t for t in g.initializer if t.name in used],
    )
    sub_model = helper.make_model(
        sub,
        opset_imports=[o for o in model.opset_import if o.domain in ("", "ai.onnx")],
        ir_version=model.ir_version,
    )
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(sub_model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    runs = []
    for batch, seq in _FOLD_SIZES:
        # NOTE: the inputs are token ids / masks [batch, sequence] and prompt_length [1] (int64)
        feeds = {
            inp.name: np.ones((batch, seq) if len(inp.shape) == 2 else (1,), dtype=np.int64)
            for inp in session.get_inputs()
        }
        names = [o.name for o in session.get_outputs()]
        runs.append(dict(zip(names, session.run(None, feeds), strict=False)))
    folded = 0
    for i, node in enumerate(targets):
        shapes = [r[node.input[1]].tolist() for r in runs]
        dims = [r[f"embedrt_fold_in_{i}"].tolist() for r in runs]
        if len({len(s) for s in shapes}) != 1:
            continue
        target, rest = [], []
        for j in range(len(shapes[0])):
            values = [s[j] for s in shapes]
            if len(set(values)) == 1 and values[0] != 0:
                # NOTE: a computed 0 means an empty dim; in a constant target it would mean "copy the input's"
                target.append(values[0])
            elif all(j < len(d) and v == d[j] for v, d in zip(values, dims, strict=False)):
                target.append(0)
            else:
                target.append(-1)
                rest.append(j)
        if len(rest) > 1 or (rest and target.count(-1) > 1):
            continue
        name = f"embedrt_reshape_{folded}"
        g.initializer.append(numpy_helper.from_array(np.array(target, dtype=np.int64), name))
        node.input[1] = name
        folded += 1
    _drop_unused(g)
    return folded


#: native ops that can write their output heads-first (attribute head_size) / read their input heads-first
#: (attribute heads_in), and the input whose initializer gives their width
_HEADS_OUT = {"PackedMatMul": ("W", 1), "DequantizeRows": ("col_scale", 0)}
_HEADS_IN = ("PackedMatMul", "QuantizePerToken")


def fold_head_transposes(graph) -> int:
    """Let the attention's native ops write and read the heads-first layout themselves, instead of a
    ``Reshape`` + ``Transpose`` pair around them (24 Transposes per MiniLM run, about 9% of a single text's
    fp32 kernel time and 20% of int8's). Returns the pairs removed. Three patterns, each node in them used
    only by the next:

    - query/value: ``X -> Reshape [0,0,H or -1,D] -> Transpose [0,2,1,3]`` becomes ``X(head_size=D)`` (output
      [B, H, S, D]), X a ``PackedMatMul`` (fp32) or ``DequantizeRows`` (int8);
    - key: the same with ``Transpose [0,2,3,1]`` becomes ``X(head_size=D) -> Transpose [0,1,3,2]``, a
      last-two-dims transpose that onnxruntime folds into the next MatMul;
    - context: ``Transpose [0,2,1,3] -> Reshape [0,0,K or -1] -> Y`` becomes ``Y(heads_in=1)``, Y a
      ``PackedMatMul`` (fp32) or ``QuantizePerToken`` (int8).

    Pure data movement: the numbers do not change (the ops' tests hold them bit-identical).
    """
    from onnx import helper, numpy_helper

    consts = {t.name: numpy_helper.to_array(t) for t in graph.initializer if len(t.dims) == 1}
    dims = {t.name: list(t.dims) for t in graph.initializer}
    consumers: dict[str, list[Any]] = {}
    producers = {o: n for n in graph.node for o in n.output}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    outputs = {o.name for o in graph.output}

    def only_user(name: str, op: str) -> Any | None:
        users = consumers.get(name, [])
        if name in outputs or len(users) != 1 or users[0].op_type != op:
            return None
        return users[0]

    def perm(node) -> list[int]:
        return next((list(a.ints) for a in node.attribute if a.name == "perm"), [])

    def attr(node, name: str) -> int:
        return next((a.i for a in node.attribute if a.name == name), 0)

    def with_attr(
        node, name: str, value: int, inputs: list[str] | None = None, outputs_: list[str] | None = None
    ):
        new = helper.make_node(
            node.op_type,
            list(node.input) if inputs is None else inputs,
            list(node.output) if outputs_ is None else outputs_,
            name=node.name,
            domain=node.domain,
        )
        new.attribute.extend(a for a in node.attribute if a.name != name)
        new.attribute.append(helper.make_attribute(name, value))
        return new

    removed: set[int] = set()
    replaced: dict[int, list[Any]] = {}
    folded = 0
    for node in graph.node:
        if node.domain != "ai.embedrt" or attr(node, "head_size") or attr(node, "heads_in"):
            continue
        # query / key / value
        if node.op_type in _HEADS_OUT:
            slot = 1 if node.op_type == "PackedMatMul" else 2
            n_out = (
                (dims.get(node.input[slot]) or [0, 0])[_HEADS_OUT[node.op_type][1]]
                if len(node.input) > slot
                else 0
            )
            reshape = only_user(node.output[0], "Reshape")
            target = consts.get(reshape.input[1]) if reshape is not None else None
            transpose = only_user(reshape.output[0], "Transpose") if reshape is not None else None
            if (
                transpose is not None
                and target is not None
                and len(target) == 4
                and list(target[:2]) == [0, 0]
                and n_out > 0
                and target[3] > 0
                and target[3] % 16 == 0
                and n_out % target[3] == 0
                and target[2] in (-1, n_out // target[3])
                and perm(transpose) in ([0, 2, 1, 3], [0, 2, 3, 1])
            ):
                new = [with_attr(node, "head_size", int(target[3]), outputs_=[transpose.output[0]])]
                if perm(transpose) == [0, 2, 3, 1]:
                    mid = transpose.output[0] + "/heads_first"
                    new[0].output[0] = mid
                    new.append(
                        helper.make_node(
                            "Transpose", [mid], [transpose.output[0]], perm=[0, 1, 3, 2], name=transpose.name
                        )
                    )
                replaced[id(node)] = new
                removed.update((id(reshape), id(transpose)))
                folded += 1
                continue
        # context
        if node.op_type not in _HEADS_IN:
            continue
        src = producers.get(node.input[0])
        if src is None or src.op_type != "Reshape" or consts.get(src.input[1]) is None:
            continue
        target = list(consts[src.input[1]])
        k = dims.get(node.input[1], [0])[0] if node.op_type == "PackedMatMul" else None
        if (
            len(target) != 3
            or target[:2] != [0, 0]
            or not (target[2] == -1 or target[2] == k or (k is None and target[2] > 0))
        ):
            continue
        back = producers.get(src.input[0])
        if (
            back is None
            or back.op_type != "Transpose"
            or perm(back) != [0, 2, 1, 3]
            or only_user(back.output[0], "Reshape") is not src
            or only_user(src.output[0], node.op_type) is not node
        ):
            continue
        replaced[id(node)] = [with_attr(node, "heads_in", 1, inputs=[back.input[0], *node.input[1:]])]
        removed.update((id(src), id(back)))
        folded += 1
    nodes = []
    for node in graph.node:
        if id(node) in removed:
            continue
        nodes.extend(replaced.get(id(node), [node]))
    del graph.node[:]
    graph.node.extend(nodes)
    _drop_unused(graph)
    return folded


def _splice(graph, replaced: dict[str, Any], dropped: set[str]) -> None:
    """Rebuild ``graph.node`` in order: each node whose first output is a key of ``replaced`` becomes that
    node, each whose first output is in ``dropped`` goes (what every chain fusion here ends with)."""
    nodes = [replaced.get(n.output[0], n) for n in graph.node if not (n.output and n.output[0] in dropped)]
    del graph.node[:]
    graph.node.extend(nodes)


def _drop_unused(graph) -> None:
    """Remove nodes none of whose outputs reaches a graph output, and initializers nothing reads."""
    live = {o.name for o in graph.output}
    keep = []
    for node in reversed(list(graph.node)):
        if any(o in live for o in node.output):
            keep.append(node)
            live.update(i for i in node.input if i)
    del graph.node[:]
    graph.node.extend(reversed(keep))
    unused = [t for t in graph.initializer if t.name not in live]
    for t in unused:
        graph.initializer.remove(t)


def pack_linears(model) -> tuple[int, int]:
    """Rewrite, in place, each Linear of the transformer (``quantize.find_linears``: a ``MatMul`` by a 2-D
    weight initializer) into ``ai.embedrt::PackedMatMul(x, W[, b])``, taking in its bias ``Add`` when
    ``quantize.bias_add`` finds one. Returns (Linears rewritten, biases folded).

    NOTE: the same float operations in the same order (the k-sum, then + b): only the summation blocking of
    the GEMM changes, so the graph agrees with the standard one to rounding (checked on the probe).
    """
    from onnx import helper

    from .quantize import bias_add, find_linears

    graph = model.graph
    # NOTE: keyed by output name, not id(): protobuf hands out fresh wrapper objects, whose ids can be reused
    linears = {lin["node"].output[0]: lin for lin in find_linears(model)}
    nodes, folded, biases = [], set(), 0
    for node in graph.node:
        if node.output[0] in folded:
            continue
        lin = linears.get(node.output[0])
        if lin is None:
            nodes.append(node)
            continue
        out, inputs = node.output[0], [node.input[0], lin["weight"]]
        found = bias_add(graph, out, lin["n"])
        if found is not None:
            add, bias = found
            inputs.append(bias)
            folded.add(add.output[0])
            out = add.output[0]
            biases += 1
        # NOTE: placed where the MatMul was: its input exists there, and every consumer of the Add's output
        # came after the Add, so after this node too.
        nodes.append(
            helper.make_node(
                "PackedMatMul", inputs, [out], name=(node.name or out) + "/packed", domain="ai.embedrt"
            )
        )
    del graph.node[:]
    graph.node.extend(nodes)
    return len(linears), biases


def _constant_value(graph, name: str) -> np.ndarray | None:
    """The value of ``name`` when a ``Constant`` node or an initializer holds it, else None."""
    from onnx import numpy_helper

    for t in graph.initializer:
        if t.name == name:
            return numpy_helper.to_array(t)
    for n in graph.node:
        if n.op_type == "Constant" and n.output[0] == name and n.attribute and n.attribute[0].name == "value":
            return numpy_helper.to_array(n.attribute[0].t)
    return None


def _scalar_is(graph, name: str, value: float) -> bool:
    v = _constant_value(graph, name)
    return v is not None and v.size == 1 and np.float32(v.reshape(())) == np.float32(value)


def _exact_gelu(graph, x: str, users: dict[str, list], outputs: set[str]) -> tuple[list[str], str] | None:
    """The exact GELU of ``x`` as transformers' ``GELUActivation`` exports it, ``Mul(Mul(x,
    Add(Erf(Div(x, 1.4142135)), 1)), 0.5)``, when its nodes feed nothing else: (its five nodes' outputs, its
    output)."""
    uses = users.get(x, [])
    if len(uses) != 2 or x in outputs:
        return None
    div = next((n for n in uses if n.op_type == "Div" and n.input[0] == x), None)
    mul = next((n for n in uses if n.op_type == "Mul"), None)
    if div is None or mul is None or not _scalar_is(graph, div.input[1], 1.4142135):
        return None

    def only(name: str, op: str):
        u = users.get(name, [])
        return u[0] if len(u) == 1 and u[0].op_type == op and name not in outputs else None

    erf = only(div.output[0], "Erf")
    add = erf and only(erf.output[0], "Add")
    if add is None or not _scalar_is(graph, next(i for i in add.input if i != erf.output[0]), 1.0):
        return None
    if only(add.output[0], "Mul") is not mul or set(mul.input) != {x, add.output[0]}:
        return None
    half = only(mul.output[0], "Mul")
    if half is None or not _scalar_is(graph, next(i for i in half.input if i != mul.output[0]), 0.5):
        return None
    return [div.output[0], erf.output[0], add.output[0], mul.output[0], half.output[0]], half.output[0]


def _users(graph) -> dict[str, list]:
    users: dict[str, list] = {}
    for n in graph.node:
        for i in n.input:
            users.setdefault(i, []).append(n)
    return users


def fuse_gelu_epilogues(graph) -> int:
    """Give each ``ai.embedrt::PackedMatMul`` (plain layout) whose output feeds only an exact GELU that GELU
    as its epilogue (``activation="gelu"``, csrc/gelu.h), in place. Returns how many.

    NOTE: the GELU's float operations are those of the exported graph; only erf is embedrt's own (within 1
    ulp, the same bits on every CPU), where onnxruntime fused the chain into its Gelu, whose erf differs by
    as much. Checked on the probe.
    """
    from onnx import helper

    users, outputs = _users(graph), {o.name for o in graph.output}
    dropped: set[str] = set()
    fused = 0
    for node in graph.node:
        if node.op_type != "PackedMatMul" or node.domain != "ai.embedrt" or node.attribute:
            continue
        found = _exact_gelu(graph, node.output[0], users, outputs)
        if found is None:
            continue
        names, out = found
        dropped.update(names)
        node.output[0] = out
        node.attribute.append(helper.make_attribute("activation", "gelu"))
        fused += 1
    keep = [n for n in graph.node if n.op_type == "PackedMatMul" or not (n.output and n.output[0] in dropped)]
    del graph.node[:]
    graph.node.extend(keep)
    _drop_unused(graph)
    return fused


def fuse_requantize(graph) -> int:
    """Rewrite, in place, each ``DequantizeRows`` (plain layout) -> exact GELU -> ``QuantizePerToken`` chain
    of the int8 graph into one ``ai.embedrt::RequantizeRows(acc, row_scale, col_scale[, bias])`` with
    ``activation="gelu"`` and the quantization's ``qmax``: the FFN's [rows, 4H] float activations are never
    written. Returns how many chains.
    """
    from onnx import helper

    users, outputs = _users(graph), {o.name for o in graph.output}
    replaced: dict[str, Any] = {}
    dropped: set[str] = set()
    for node in graph.node:
        if node.op_type != "DequantizeRows" or node.domain != "ai.embedrt" or node.attribute:
            continue
        found = _exact_gelu(graph, node.output[0], users, outputs)
        if found is None:
            continue
        names, out = found
        quant = users.get(out, [])
        if len(quant) != 1 or quant[0].op_type != "QuantizePerToken" or out in outputs:
            continue
        q = quant[0]
        qmax = next((helper.get_attribute_value(a) for a in q.attribute if a.name == "qmax"), None)
        attrs = {"activation": "gelu"} | ({"qmax": qmax} if qmax is not None else {})
        replaced[q.output[0]] = helper.make_node(
            "RequantizeRows",
            list(node.input),
            list(q.output),
            name=(node.name or node.output[0]) + "/requantize",
            domain="ai.embedrt",
            **attrs,
        )
        dropped.update([node.output[0], *names])
    # NOTE: placed where the QuantizePerToken was: its inputs (the Dequantize's) all exist by then
    _splice(graph, replaced, dropped)
    _drop_unused(graph)
    return len(replaced)


def fuse_attention(graph) -> int:
    """Rewrite, in place, each layer's ``MatMul(Q, Transpose(K)) -> Mul(scale) -> Add(bias) -> Softmax ->
    MatMul(., V)`` into one ``ai.embedrt::Attention(Q, K, V, bias)`` (csrc/attention.h), where Q, K and V come
    heads-first from native Linears (``head_size``) and nothing else reads the chain. Returns how many.

    NOTE: the [B, H, S, S] scores and probabilities are never written, and onnxruntime's tiny per-head
    GEMMs (S x D by D x S) go; the float operations are the chain's, with embedrt's exp in the softmax
    (checked on the probe).
    """
    from onnx import helper

    producers = {o: n for n in graph.node for o in n.output}
    users, outputs = _users(graph), {o.name for o in graph.output}

    def only(name: str, op: str):
        u = users.get(name, [])
        return u[0] if len(u) == 1 and u[0].op_type == op and name not in outputs else None

    def heads_first(name: str) -> bool:
        n = producers.get(name)
        return n is not None and any(a.name == "head_size" and a.i > 0 for a in n.attribute)

    replaced: dict[str, Any] = {}
    dropped: set[str] = set()
    for sm in graph.node:
        if sm.op_type != "Softmax" or any(a.name == "axis" and a.i not in (-1, 3) for a in sm.attribute):
            continue
        add = producers.get(sm.input[0])
        if add is None or add.op_type != "Add" or only(add.output[0], "Softmax") is not sm:
            continue
        mul = next(
            (producers.get(i) for i in add.input if getattr(producers.get(i), "op_type", "") == "Mul"), None
        )
        if mul is None or only(mul.output[0], "Add") is not add:
            continue
        bias = next(i for i in add.input if i != mul.output[0])
        mm = next(
            (producers.get(i) for i in mul.input if getattr(producers.get(i), "op_type", "") == "MatMul"),
            None,
        )
        if mm is None or only(mm.output[0], "Mul") is not mul:
            continue
        scale = _constant_value(graph, next(i for i in mul.input if i != mm.output[0]))
        kt = producers.get(mm.input[1])
        if scale is None or scale.size != 1 or kt is None or kt.op_type != "Transpose":
            continue
        if [list(a.ints) for a in kt.attribute if a.name == "perm"] != [[0, 1, 3, 2]]:
            continue
        if only(kt.output[0], "MatMul") is not mm:
            continue
        ctx = only(sm.output[0], "MatMul")
        if ctx is None or ctx.input[0] != sm.output[0]:
            continue
        q, k, v = mm.input[0], kt.input[0], ctx.input[1]
        if not (heads_first(q) and heads_first(k) and heads_first(v)):
            continue
        replaced[ctx.output[0]] = helper.make_node(
            "Attention",
            [q, k, v, bias],
            [ctx.output[0]],
            name=(sm.name or sm.output[0]) + "/attention",
            domain="ai.embedrt",
            scale=float(scale.reshape(())),
        )
        dropped.update([kt.output[0], mm.output[0], mul.output[0], add.output[0], sm.output[0]])
    _splice(graph, replaced, dropped)
    _drop_unused(graph)
    return len(replaced)


def fuse_add_layernorms(graph) -> int:
    """Rewrite, in place, each ``LayerNormalization(Add(a, b))`` over the last axis (a residual add: neither
    input a constant) into one ``ai.embedrt::AddLayerNorm(a, b, gamma, beta)``, taking in the
    ``QuantizePerToken`` that reads its output when there is one (``qmax``; its outputs become the op's).
    Returns how many.

    NOTE: onnxruntime's LayerNormalization sums in an order of its own; AddLayerNorm's sums have a fixed order
    (csrc/layernorm.h), so with it the int8 graph's float operations are embedrt's from the embeddings to the
    pooling, the same bits on every CPU.
    """
    from onnx import helper

    producers = {o: n for n in graph.node for o in n.output}
    users, outputs = _users(graph), {o.name for o in graph.output}
    initializers = {t.name for t in graph.initializer}
    replaced: dict[str, Any] = {}
    dropped: set[str] = set()
    for ln in graph.node:
        if ln.op_type != "LayerNormalization" or len(ln.input) < 3 or len(ln.output) != 1:
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in ln.attribute}
        # NOTE: gamma and beta may reach it through an Identity (the exporter shares equal initializers)
        if attrs.get("axis", -1) != -1:
            continue
        add = producers.get(ln.input[0])
        if add is None or add.op_type != "Add" or len(users.get(add.output[0], [])) != 1:
            continue
        if add.output[0] in outputs or any(i in initializers or i not in producers for i in add.input):
            continue
        y = ln.output[0]
        quant = [u for u in users.get(y, []) if u.op_type == "QuantizePerToken" and u.domain == "ai.embedrt"]
        q = quant[0] if len(quant) == 1 and all(a.name == "qmax" for a in quant[0].attribute) else None
        qmax = 127 if q is None else next((a.i for a in q.attribute if a.name == "qmax"), 127)
        outs = [y, *q.output] if q is not None else [y, y + "/q_unused", y + "/scale_unused"]
        node = helper.make_node(
            "AddLayerNorm",
            [add.input[0], add.input[1], ln.input[1], ln.input[2]],
            outs,
            name=(ln.name or y) + "/add_layernorm",
            domain="ai.embedrt",
            epsilon=float(attrs.get("epsilon", 1e-5)),
            qmax=qmax if q is not None else 0,
        )
        replaced[y] = node
        dropped.add(add.output[0])
        if q is not None:
            dropped.add(q.output[0])
    _splice(graph, replaced, dropped)
    return len(replaced)


def pack_int8_gemms(model) -> int:
    """Rewrite, in place, each ``MatMulInteger(A u8, B s8 initializer[, scalar a_zero_point])`` with no B
    zero point (embedrt's int8 graph has only these) into ``ai.embedrt::PackedMatMulInteger`` with the same
    inputs. Returns how many were rewritten.

    NOTE: integer sums are exact, so the rewritten graph gives the same int32s, and the same vectors, bit for
    bit (checked on the probe at export and at every load).
    """
    inits = {i.name: i for i in model.graph.initializer}
    count = 0
    for node in model.graph.node:
        if node.op_type != "MatMulInteger" or node.domain not in ("", "ai.onnx"):
            continue
        weight = inits.get(node.input[1])
        if weight is None or weight.data_type != 3 or len(weight.dims) != 2:  # 3: INT8
            continue
        if len(node.input) > 3 and node.input[3]:  # a B zero point
            continue
        if len(node.input) > 2 and node.input[2]:
            zp = inits.get(node.input[2])
            if zp is None or zp.data_type != 2 or int(np.prod(zp.dims)) != 1:  # 2: UINT8, one value
                continue
        del node.input[3:]  # an empty B zero point: the op takes three inputs
        node.op_type, node.domain = "PackedMatMulInteger", "ai.embedrt"
        count += 1
    if count and not any(o.domain == "ai.embedrt" for o in model.opset_import):
        from onnx import helper

        model.opset_import.append(helper.make_opsetid("ai.embedrt", 1))
    return count
