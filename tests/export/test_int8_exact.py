"""The int8 variant's integer arithmetic is exact on the CPU that runs these tests (export/exact.py): every
MatMulInteger of the graph, on the probe texts and on worst-case rows, equals a numpy int64 product bit for
bit. The default scheme (w7a8) and w8a7 cannot saturate onnxruntime's u8 x s8 kernel on any ISA; the 8-bit x
8-bit opt-in (w8a8-vnni) is checked only where the CPU has VNNI (or ARM64 dot products), because on AVX2 it
does saturate: EMBEDRT_TEST_SATURATING=1 runs those checks anyway, to see them fail there (for example under
``qemu-x86_64 -cpu Haswell``)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from embedrt import export_model
from embedrt.export.exact import capture_graph, check_scheme, scheme_extremes
from embedrt.export.quantize import INT8_SCHEMES, Int8Config, int8_scheme
from embedrt.export.verify import probe_texts
from embedrt.runtime import native
from embedrt.runtime.tokenize import TextTokenizer

SATURATING_ENV = "EMBEDRT_TEST_SATURATING"


def _skip_saturating(scheme: str) -> None:
    k = native.cpu_kernels()
    exact_here = (
        "avx512_vnni" in k["features"] or "avx_vnni" in k["features"] or k["machine"] in ("aarch64", "arm64")
    )
    forced = os.environ.get(SATURATING_ENV) == "1"
    if not int8_scheme(scheme).machine_independent and not exact_here and not forced:
        pytest.skip(
            f"{scheme} saturates onnxruntime's u8 x s8 kernel on CPUs without VNNI, and this one has "
            f"none ({k['cpu_isa']}, features {k['features']}); {SATURATING_ENV}=1 runs it to show it"
        )


def _saturating_pairs(a_u8: np.ndarray, w_s8: np.ndarray, zero_point: int) -> np.ndarray:
    """What a pmaddubsw kernel computes: adjacent u8 * s8 pairs summed in a saturating int16, then the pairs
    in int32, then the zero point's share (sum of w) taken off exactly."""
    a, w = a_u8.astype(np.int64), w_s8.astype(np.int64)
    k = a.shape[1] - a.shape[1] % 2
    pairs = a[:, 0:k:2, None] * w[None, 0:k:2] + a[:, 1:k:2, None] * w[None, 1:k:2]
    acc = np.clip(pairs, -32768, 32767).sum(axis=1)
    if k < a.shape[1]:
        acc += a[:, -1:] @ w[-1:]
    return acc - zero_point * w.sum(axis=0)


@pytest.mark.parametrize("scheme", list(INT8_SCHEMES))
def test_the_scheme_ranges_and_what_saturation_does_to_them(scheme):
    # independent of this CPU: a numpy model of the saturating kernel against the exact product
    sch = int8_scheme(scheme)
    a, w, zp = scheme_extremes(scheme)
    exact = (a.astype(np.int64) - zp) @ w.astype(np.int64)
    saturated = _saturating_pairs(a, w, zp)
    assert sch.machine_independent == (sch.max_pair_sum <= 32767), sch
    if sch.machine_independent:
        np.testing.assert_array_equal(saturated, exact)
    else:
        assert np.abs(saturated - exact).max() > 10_000  # the full-range rows lose the top of their sums


@pytest.mark.parametrize("scheme", list(INT8_SCHEMES))
def test_matmulinteger_is_exact_at_the_schemes_extremes(scheme):
    _skip_saturating(scheme)
    result = check_scheme(scheme)
    assert result["max_abs_error"] == 0 and result["wrong_fraction"] == 0.0, result


def _probe_feeds(export_dir):
    m = json.loads((export_dir / "embedrt.json").read_text())
    tok = TextTokenizer(
        export_dir / m["tokenizer"].get("file", "tokenizer.json"),
        int(m["max_seq_length"]),
        int(m["tokenizer"]["pad_token_id"]),
    )
    ids, mask = tok.pad(tok.encode_ids(probe_texts()))
    return {"input_ids": ids, "attention_mask": mask}, m


@pytest.fixture(scope="module", params=list(INT8_SCHEMES))
def tiny_int8_export(request, tiny_factory, tmp_path_factory):
    scheme = request.param
    _skip_saturating(scheme)
    st_dir, _ = tiny_factory(export=False, arch="bert", pooling="mean", normalize=True, seed=31)
    out = tmp_path_factory.mktemp(f"exact-{scheme}") / "export"
    export_model(
        str(st_dir), out, variants=["fp32", "int8"], int8=Int8Config(exclude_roles=(), scheme=scheme)
    )
    return scheme, out


def test_every_matmulinteger_of_the_graph_is_exact(tiny_int8_export):
    scheme, out = tiny_int8_export
    feeds, m = _probe_feeds(out)
    entry = m["variants"]["int8"]
    assert entry["scheme"]["scheme_name"] == scheme
    assert entry["scheme"]["machine_independent"] is int8_scheme(scheme).machine_independent
    graphs = [(out / entry["file"], None)]
    if native.library_path() is not None and "native" in entry:
        graphs.append((out / entry["native"]["file"], native.register))
    for path, register in graphs:
        results = capture_graph(path, feeds, register=register)
        assert len(results) == 2 * 12, path  # 12 MatMulIntegers, each on the probe and on worst-case rows
        bad = [r for r in results if r["max_abs_error"] != 0]
        assert not bad, (path.name, bad[:3])
        assert all(r["rows"] >= 2 for r in results)


def test_weights_stay_in_the_schemes_range(tiny_int8_export):
    import onnx
    from onnx import numpy_helper

    scheme, out = tiny_int8_export
    sch = int8_scheme(scheme)
    model = onnx.load(str(out / "model.int8.onnx"))
    inits = {i.name: i for i in model.graph.initializer}
    for node in (n for n in model.graph.node if n.op_type == "MatMulInteger"):
        w = numpy_helper.to_array(inits[node.input[1]]).astype(np.int64)
        assert np.abs(w).max() == sch.weight_max, node.name  # the full range is used, and not exceeded
        assert int(numpy_helper.to_array(inits[node.input[2]])) == sch.act_zero_point
