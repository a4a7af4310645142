"""The benchmark scripts' own behaviour: the retrieval-shaped inputs (benchmarks/make_passages.py,
make_shape_model.py) and the A/B scripts (parallel_runs.py, export_ab.py, int8_gemm_ab.py)."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


LINES = [f"sentence {i} about the model and the index {'word ' * (i % 7)}".strip() for i in range(60)]


def words(text: str) -> int:
    return len(text.split())


def test_passages_join_consecutive_lines_within_the_bounds():
    mp = _load("make_passages")
    passages = mp.make_passages(LINES, words, min_tokens=20, max_tokens=40, seed=1)
    assert len(passages) >= 5
    assert all(20 <= words(p) <= 40 for p in passages)
    joined = " ".join(LINES)
    at = 0
    for p in passages:  # each passage is a run of consecutive lines, in corpus order
        k = joined.index(p, at)
        assert k >= at and (k == 0 or joined[k - 1] == " ")
        at = k + len(p)
    assert mp.make_passages(LINES, words, 20, 40, seed=1) == passages  # deterministic
    assert mp.make_passages(LINES, words, 20, 40, seed=2) != passages  # the seed draws the targets
    assert len(mp.make_passages(LINES, words, 20, 40, seed=1, limit=2)) == 2
    lengths = [words(p) for p in passages]
    assert max(lengths) - min(lengths) >= 8  # spread over the range, not all at the minimum
    # a line longer than the maximum alone is dropped, not cut
    with_long = mp.make_passages(["a " * 50, *LINES[:12]], words, 20, 40)
    assert with_long and all("a a a" not in p for p in with_long)
    with pytest.raises(ValueError):
        mp.make_passages(LINES, words, 40, 20)


def test_passages_cli_counts_with_the_export_tokenizer(tiny_bert, tmp_path):
    from embedrt import Encoder

    _, export_dir = tiny_bert
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    out = tmp_path / "passages.txt"
    cmd = [sys.executable, str(REPO / "benchmarks" / "make_passages.py"), str(export_dir), "-o", str(out)]
    cmd += ["--corpus", str(corpus), "--min-tokens", "30", "--max-tokens", "60"]
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    passages = out.read_text(encoding="utf-8").splitlines()
    counts = Encoder(export_dir, device="cpu").count_tokens(passages)
    assert np.all((counts >= 30) & (counts <= 60))
    assert f"wrote {len(passages)} passages" in res.stdout
    assert f"{len(passages)} of {len(passages)} passages (100%) are truncated" in res.stdout  # window 24
    bad = subprocess.run(cmd[:2] + [str(tmp_path / "nope"), "-o", str(out)], capture_output=True, text=True)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and "make_passages:" in bad.stderr


def test_shape_model_configs_are_the_real_shapes():
    sm = _load("make_shape_model")
    mpnet, bert = sm.SHAPES["mpnet-base"], sm.SHAPES["bert-base"]
    keys = ("layers", "hidden", "heads", "ffn", "vocab", "max_seq_length")
    assert [mpnet[k] for k in keys] == [12, 768, 12, 3072, 30527, 384] and mpnet["arch"] == "mpnet"
    assert [bert[k] for k in keys] == [12, 768, 12, 3072, 30522, 512] and bert["arch"] == "bert"


@pytest.mark.slow  # NOTE: a 30k-row embedding table even at the small shape; export and verification
@pytest.mark.parametrize("shape", ["mpnet-base", "bert-base"])
def test_shape_model_exports_and_loads(shape, tmp_path):
    from sentence_transformers import SentenceTransformer

    from embedrt import Encoder, export_model

    out = tmp_path / shape
    cmd = [sys.executable, str(REPO / "benchmarks" / "make_shape_model.py"), shape, "-o", str(out)]
    small = ["--layers", "2", "--hidden", "64", "--heads", "4", "--ffn", "128", "--max-seq-length", "48"]
    subprocess.run(cmd + small, check=True, capture_output=True)
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == ("mpnet" if shape == "mpnet-base" else "bert")
    assert config["vocab_size"] == (30527 if shape == "mpnet-base" else 30522)
    assert config["num_hidden_layers"] == 2 and config["hidden_size"] == 64
    st = SentenceTransformer(str(out), device="cpu")
    assert st.max_seq_length == 48
    assert st.tokenize(["hello world"])["input_ids"][0].tolist() == [101, 7592, 2088, 102]  # BERT's vocab
    export_model(str(out), tmp_path / "export")
    enc = Encoder(tmp_path / "export", device="cpu")
    texts = ["hello world", "a passage about retrieval " * 20]
    assert np.abs(enc.encode(texts) - st.encode(texts)).max() <= 1e-5
    again = subprocess.run(cmd, capture_output=True, text=True)  # never over an existing directory
    assert again.returncode != 0 and "exists" in again.stderr


def test_parallel_runs_script_compares_and_refuses_bad_input(native_tiny_int8, tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    cmd = [sys.executable, str(REPO / "benchmarks" / "parallel_runs.py"), str(native_tiny_int8)]
    res = subprocess.run(cmd + ["--corpus", str(corpus), "--rounds", "2", "--batch-size", "8"], **RUN)
    assert res.returncode == 0, res.stderr
    assert "vectors equal bit for bit: True" in res.stdout and "median of 2 rounds" in res.stdout
    bad = subprocess.run(cmd[:2] + [str(tmp_path / "nope")], **RUN)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and "parallel_runs:" in bad.stderr


def test_small_calls_script_compares_both_ways_and_refuses_bad_input(native_tiny_int8, tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    cmd = [sys.executable, str(REPO / "benchmarks" / "small_calls.py"), str(native_tiny_int8)]
    for compare in ("spread", "pool"):
        args = [
            "--corpus",
            str(corpus),
            "--texts",
            "2",
            "4",
            "--calls",
            "5",
            "--rounds",
            "2",
            "--compare",
            compare,
        ]
        res = subprocess.run(cmd + args, **RUN)
        assert res.returncode == 0, res.stderr
        assert res.stdout.count("vectors equal bit for bit: True") == 2, res.stdout
        assert "2 texts per call" in res.stdout and "4 texts per call" in res.stdout
    bad = subprocess.run(cmd + ["--corpus", str(tmp_path / "nope.txt")], **RUN)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and "small_calls:" in bad.stderr


def test_export_ab_switches_a_graph_by_environment(native_tiny_int8, tmp_path):
    from embedrt.runtime import native

    if native.library_path() is None or native.cpu_kernels()["isa"] == "scalar":
        pytest.skip("the packed int8 graph needs the built library and AVX2")
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    script = str(REPO / "benchmarks" / "export_ab.py")
    cmd = [sys.executable, script, str(native_tiny_int8), str(native_tiny_int8), "--variant", "int8"]
    cmd += ["--corpus", str(corpus), "--limit", "20", "--rounds", "2"]
    cmd += ["--env-a", "EMBEDRT_PACKED_MATMUL=0", "--env-b", "EMBEDRT_PACKED_MATMUL=1"]
    for single in ([], ["--single"]):
        res = subprocess.run(cmd + single, **RUN)
        assert res.returncode == 0, res.stderr
        a_line, b_line = res.stdout.splitlines()[:2]
        assert "model.int8.fused.onnx" in a_line and "model.int8.packed.onnx" in b_line, res.stdout
        assert "max abs diff 0.0e+00" in res.stdout  # the two int8 graphs: the same bits
        assert ("one call per text: p50" in res.stdout) == bool(single)
    bad = subprocess.run(cmd[:-4] + ["--env-a", "NOVALUE"], **RUN)
    assert bad.returncode == 2 and "NAME=VALUE" in bad.stderr and "Traceback" not in bad.stderr


def test_int8_gemm_ab_checks_both_kernels_and_reports(tmp_path):
    from embedrt.runtime import native

    if native.library_path() is None:
        pytest.skip("needs the built library")
    script = str(REPO / "benchmarks" / "int8_gemm_ab.py")
    res = subprocess.run([sys.executable, script, "--rows", "3", "--rounds", "1"], **RUN)
    assert res.returncode == 0, res.stderr
    lines = [line for line in res.stdout.splitlines() if line.startswith("[3, ")]
    assert len(lines) == 3 and all("GOP/s" in line and line.endswith("x") for line in lines), res.stdout


RUN = dict(capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def native_tiny_int8(tmp_path_factory):
    from embedrt import export_model
    from tiny_models import build_tiny_st

    base = tmp_path_factory.mktemp("parallel")
    st_dir = build_tiny_st(base / "st", arch="bert", pooling="mean", normalize=True)
    export_model(str(st_dir), base / "export", variants=["fp32", "int8"])
    return base / "export"


def _serve_row(rps: float, texts_s: float | None = None, p50: float = 5.0) -> dict:
    return {"rps": rps, "texts_s": rps if texts_s is None else texts_s, "p50_ms": p50}


def test_bench_serve_targets_and_ceiling_from_the_rows():
    bench = _load("bench_serve")
    rows = {
        ("direct", 1, 1): _serve_row(150.0, p50=5.5),
        ("direct-all", 1, 1): _serve_row(140.0, p50=6.0),
        ("lean", 1, 1): _serve_row(120.0, p50=7.0),
        ("lean", 1, 8): _serve_row(160.0),
        ("lean", 1, 32): _serve_row(190.0),
        ("ray", 1, 8): _serve_row(50.0),
        ("ray", 1, 32): _serve_row(80.0),
    }
    checks = {name: (round(value, 3), met) for name, value, _, met in bench.targets(rows)}
    assert checks["lean / Ray Serve req/s at 8 clients"] == (3.2, True)
    assert checks["lean / Ray Serve req/s at 32 clients"] == (2.375, False)
    assert checks["lean 1-client p50 minus in-process encode p50 (ms)"] == (1.5, True)  # vs the better p50
    assert checks["lean 32-client texts/s / in-process one-at-a-time texts/s"] == (round(190 / 150, 3), True)
    assert bench.ceilings(rows) == []  # no 32-text rows: no ceiling to state
    rows[("direct", 32, 1)] = _serve_row(8.0, texts_s=256.0)
    rows[("direct-all", 32, 1)] = _serve_row(7.5, texts_s=240.0)
    notes = bench.ceilings(rows)
    assert len(notes) == 2
    assert "needs 150 one-text req/s" in notes[0] and "256 texts/s (0.59x of it)" in notes[0]
    assert "needs 240 one-text req/s" in notes[1] and "(0.94x of it)" in notes[1]


def test_int8_attention_study_replaces_every_attention_and_stays_batch_invariant(native_tiny_int8):
    """The study's graph: every native Attention becomes standard ops on rounded operands, it runs, it is
    close to the served graph (rounding, not a different model), and a text alone equals it inside a padded
    batch (padding stays out of V's column scales)."""
    import onnx
    import onnxruntime as ort

    from embedrt.manifest import read_manifest
    from embedrt.runtime import native
    from embedrt.runtime.session import load_tokenizer

    study = _load("int8_attention_study")
    served = onnx.load(str(native_tiny_int8 / "model.int8.fused.onnx"))
    attention = [n for n in served.graph.node if n.domain == "ai.embedrt" and n.op_type == "Attention"]
    graph, replaced = study.fake_quant_attention(served)
    assert replaced == len(attention) > 0
    assert not [n for n in graph.graph.node if n.op_type == "Attention"]
    assert sum(n.op_type == "Round" for n in graph.graph.node) == 4 * replaced  # q, k, p, v
    so = ort.SessionOptions()
    native.register(so)
    sessions = [
        ort.InferenceSession(g.SerializeToString(), so, providers=["CPUExecutionProvider"])
        for g in (served, graph)
    ]
    tok = load_tokenizer(read_manifest(native_tiny_int8))
    texts = ["a short one", "a much longer sentence about the index and the model " * 3, "mid length text"]
    rows = tok.encode_ids(texts)
    ids, mask = tok.pad(rows)
    feed = {"input_ids": ids, "attention_mask": mask}
    base, fq = (s.run(["sentence_embedding"], feed)[0] for s in sessions)
    cos = (base * fq).sum(1) / np.linalg.norm(base, axis=1) / np.linalg.norm(fq, axis=1)
    assert cos.min() > 0.95 and np.abs(base - fq).max() > 0  # rounded, so not the same bits
    for i, row in enumerate(rows):
        a_ids, a_mask = tok.pad([row])
        alone = sessions[1].run(["sentence_embedding"], {"input_ids": a_ids, "attention_mask": a_mask})[0]
        np.testing.assert_allclose(alone[0], fq[i], atol=1e-5)


@pytest.mark.skipif(not shutil.which("g++"), reason="no C++ compiler")
def test_attention_kernel_and_avx2_peak_benchmarks_build_and_agree_across_isas(tmp_path):
    """benchmarks/attention_kernel.cc times the native attention kernel: it builds, runs, gives the same
    checksum on the scalar path and on this CPU's vector path (the kernel's bits do not depend on the ISA),
    and refuses an ISA this CPU lacks; benchmarks/avx2_peak.cc builds."""
    import platform

    if platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip("x86-64 benchmarks")
    exe = tmp_path / "ak"
    src = [str(REPO / "benchmarks" / "attention_kernel.cc"), str(REPO / "csrc" / "attention_cpu.cc")]
    src.append(str(REPO / "csrc" / "mean_pool_cpu.cc"))
    build = ["g++", "-O2", "-std=c++17", f"-I{REPO / 'csrc'}", *src, "-o", str(exe)]
    subprocess.run(build, check=True, capture_output=True)
    from embedrt.runtime.native import cpu_kernels

    isa = cpu_kernels()["cpu_isa"]
    sums = {}
    for path in ("scalar", isa):
        res = subprocess.run([str(exe), path, "16", "40"], capture_output=True, text=True, check=True)
        assert res.stdout.count("GFLOP/s") == 2, res.stdout
        sums[path] = [line.split("checksum ")[1] for line in res.stdout.splitlines()]
    assert sums["scalar"] == sums[isa]
    other = "avx512" if isa != "avx512" else None
    if other:
        res = subprocess.run([str(exe), other, "16"], capture_output=True, text=True)
        assert res.returncode == 2 and "no avx512" in res.stderr
    peak = [
        "g++", "-O2", "-std=c++17", "-mavx2", "-mfma", "-pthread",
        str(REPO / "benchmarks" / "avx2_peak.cc"), "-o", str(tmp_path / "peak"),
    ]  # fmt: skip
    subprocess.run(peak, check=True, capture_output=True)
