"""The reliability catalogue: hostile but realistic inputs, each with its typed error or its correct result.

The cases of the integrity review (manifest paths confined to the export, a sha256 on every file read,
invalid Unicode, CLI errors, manifest fields checked against the graph, one blank-line rule) and those that
already held (bad inputs, corrupted graphs, threads, memory, atomic export, external data), so none regresses.
See docs/errors.md.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest

from embedrt import ArtifactError, CrossEncoder, Encoder, InputError
from embedrt.cli import main
from embedrt.manifest import MANIFEST_NAME, read_manifest, sha256_file

TEXTS = ["hello world", "a man playing a guitar on stage", "", "café naïve"]


# ---------------------------------------------------------------------------------------------- helpers
def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _edit(export_dir: Path, change) -> None:
    path = export_dir / MANIFEST_NAME
    m = json.loads(path.read_text())
    change(m)
    path.write_text(json.dumps(m, indent=2))


@pytest.fixture()
def export(tiny_bert, tmp_path) -> Path:
    return _copy(tiny_bert[1], tmp_path / "export")


@pytest.fixture()
def cross(tiny_cross, tmp_path) -> Path:
    return _copy(tiny_cross[1], tmp_path / "cross")


class _Opened:
    """Every path opened from Python (audit hook) or handed to onnxruntime / tokenizers while recording."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        self.on = False

    def hook(self, event: str, args: tuple) -> None:
        if self.on and event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
            self.paths.append(os.fsdecode(args[0]))


_OPENED = _Opened()
sys.addaudithook(_OPENED.hook)


@pytest.fixture()
def opened(monkeypatch):
    """Record the files the runtime opens: Python opens, onnxruntime sessions, tokenizer files."""
    import onnxruntime as ort

    from embedrt.runtime import tokenize

    real_session, real_tokenizer = ort.InferenceSession, tokenize.Tokenizer

    def session(path, *args, **kwargs):
        _OPENED.paths.append(os.fsdecode(path))
        return real_session(path, *args, **kwargs)

    class Tokenizer:
        @staticmethod
        def from_file(path):
            _OPENED.paths.append(os.fsdecode(path))
            return real_tokenizer.from_file(path)

    monkeypatch.setattr(ort, "InferenceSession", session)
    monkeypatch.setattr(tokenize, "Tokenizer", Tokenizer)
    _OPENED.paths, _OPENED.on = [], True
    yield _OPENED
    _OPENED.on = False


def _outside(paths: list[str], export_dir: Path) -> list[str]:
    root = export_dir.resolve()
    out = []
    for p in paths:
        rp = Path(p).resolve()
        if rp == root or root in rp.parents:
            continue
        if (
            "site-packages" in rp.parts
            or rp.suffix in (".py", ".pyc", ".so")
            or str(rp).startswith(("/proc", "/sys", "/dev"))
        ):
            continue  # the interpreter's own imports, the native library, /proc/cpuinfo
        out.append(str(rp))
    return out


# ---------------------------------------------------------------------------------------------- 1. paths
PATH_FIELDS = {
    "variants.fp32.file": lambda m: m["variants"]["fp32"],
    "tokenizer.file": lambda m: m["tokenizer"],
}


@pytest.mark.parametrize("where", ["relative", "absolute"])
@pytest.mark.parametrize("field", sorted(PATH_FIELDS))
def test_planted_path_outside_the_export_opens_nothing_outside(export, tmp_path, opened, field, where):
    # A real, checksum-matching file outside the export: without confinement it would load and serve.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    name = "model.onnx" if field.startswith("variants") else "tokenizer.json"
    shutil.copy(export / name, elsewhere / name)
    planted = f"../elsewhere/{name}" if where == "relative" else str(elsewhere / name)
    _edit(export, lambda m: PATH_FIELDS[field](m).__setitem__("file", planted))
    opened.paths.clear()
    with pytest.raises(
        ArtifactError, match=rf"field '{field}' .*{'absolute' if where == 'absolute' else 'contains'}"
    ):
        Encoder(export, device="cpu", native=False)
    assert _outside(opened.paths, export) == [], opened.paths
    assert not any(name in p and "elsewhere" in p for p in opened.paths)


def test_native_graph_and_probe_paths_are_confined(export, tmp_path):
    m = read_manifest(export)
    native = m.variants["fp32"].native
    if native is None:
        pytest.skip("this tiny export has no native graph")
    for key in ("file", "probe"):
        for planted in (f"../x/{getattr(native, key)}", str(tmp_path / "x" / "y.onnx")):
            bad = _copy(export, tmp_path / f"bad-{key}-{len(planted)}")
            _edit(bad, lambda d, k=key, p=planted: d["variants"]["fp32"]["native"].__setitem__(k, p))
            with pytest.raises(ArtifactError, match=rf"field 'variants.fp32.native.{key}'"):
                Encoder(bad, device="cpu")
    if native.packed is not None:
        bad = _copy(export, tmp_path / "bad-packed")
        _edit(bad, lambda d: d["variants"]["fp32"]["native"]["packed"].__setitem__("file", "/etc/passwd"))
        with pytest.raises(
            ArtifactError, match=r"field 'variants.fp32.native.packed.file' is an absolute path"
        ):
            read_manifest(bad)


def test_symlink_out_of_the_export_is_refused(export, tmp_path, opened):
    outside = tmp_path / "outside.onnx"
    shutil.copy(export / "model.onnx", outside)
    (export / "model.onnx").unlink()
    (export / "model.onnx").symlink_to(outside)
    opened.paths.clear()
    with pytest.raises(
        ArtifactError, match=r"field 'variants.fp32.file' resolves outside the export directory"
    ):
        Encoder(export, device="cpu", native=False)
    assert str(outside) not in [str(Path(p).resolve()) for p in opened.paths]


def test_writer_refuses_what_the_reader_refuses(export):
    from embedrt.manifest import write_manifest

    m = json.loads((export / MANIFEST_NAME).read_text())
    m["variants"]["fp32"]["file"] = "../model.onnx"
    with pytest.raises(ArtifactError, match="field 'variants.fp32.file' contains '..'"):
        write_manifest(export, m)


# ---------------------------------------------------------------------------------------------- 2. checksums
def test_tampered_tokenizer_is_refused(export):
    tok = json.loads((export / "tokenizer.json").read_text())
    vocab = tok["model"]["vocab"]
    a, b = "hello", "world"
    vocab[a], vocab[b] = vocab[b], vocab[a]  # two entries swapped: different vectors, still a valid tokenizer
    (export / "tokenizer.json").write_text(json.dumps(tok))
    with pytest.raises(ArtifactError, match=r"sha256 mismatch for .*tokenizer.json"):
        Encoder(export, device="cpu")
    # verify_checksum=False is the explicit way to load it anyway; it then gives other vectors
    swapped = Encoder(export, device="cpu", verify_checksum=False).encode(["hello world"])
    assert swapped.shape == (1, 32)


def test_every_file_the_runtime_reads_has_a_sha256(export):
    m = read_manifest(export)
    assert m.format_version == 2 and m.tokenizer.sha256 == sha256_file(export / "tokenizer.json")
    for v in m.variants.values():
        assert v.sha256 == sha256_file(export / v.file)
        for g in (v.native, v.native.packed if v.native else None):
            if g is not None:
                assert g.sha256 == sha256_file(export / g.file)
                assert g.probe_sha256 == sha256_file(export / g.probe)


def _as_format_1(export_dir: Path) -> None:
    """A manifest as format-1 exports wrote it (fused_pooling; no tokenizer sha256, no position_limit)."""

    def change(m):
        m["format_version"] = 1
        m.pop("position_limit")
        m["tokenizer"].pop("sha256")
        for v in m["variants"].values():
            if "native" in v:
                v["fused_pooling"] = v.pop("native")

    _edit(export_dir, change)


def test_format_1_export_still_loads_with_the_tokenizer_unchecked(export, tiny_bert):
    expected = Encoder(tiny_bert[1], device="cpu").encode(TEXTS)
    _as_format_1(export)
    with pytest.warns(UserWarning, match="lists no sha256 for its tokenizer"):
        enc = Encoder(export, device="cpu")
    np.testing.assert_array_equal(enc.encode(TEXTS), expected)
    m = read_manifest(export)
    assert m.format_version == 1 and m.tokenizer.sha256 is None and m.position_limit is None
    if m.variants["fp32"].native is not None:
        assert m.variants["fp32"].native.file  # read from the format-1 key "fused_pooling"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Encoder(export, device="cpu", verify_checksum=False)  # unchecked on request: no warning


def test_format_2_manifest_without_tokenizer_sha256_is_refused(export):
    _edit(export, lambda m: m["tokenizer"].pop("sha256"))
    with pytest.raises(ArtifactError, match="field 'tokenizer.sha256' is missing"):
        Encoder(export, device="cpu")


# ---------------------------------------------------------------------------------------------- 3. Unicode
@pytest.mark.parametrize(
    "bad,match",
    [
        ("\ud800", r"sentences is not valid Unicode: lone surrogate '\\ud800' at character 0"),
        (["ok", "a\udfffb"], r"sentences\[1\] is not valid Unicode: lone surrogate '\\udfff' at character 1"),
    ],
)
def test_lone_surrogate_is_an_input_error(tiny_bert, bad, match):
    enc = Encoder(tiny_bert[1], device="cpu")
    with pytest.raises(InputError, match=match):
        enc.encode(bad)
    with pytest.raises(InputError, match=r"sentences\[0\] is not valid Unicode"):
        enc.tokenize(["\ud800"])  # the server's path (tokens first, then encode_tokenized)
    with pytest.raises(InputError, match="prompt is not valid Unicode"):
        enc.encode("ok", prompt="\ud800 ")
    # any other path into the tokenizer: its own guard still holds
    with pytest.raises(InputError, match=r"text 0 is not valid Unicode"):
        enc.tokenizer.encode_ids(["\ud800"])
    assert enc.encode(["ok", "é ✓ 😀"]).shape == (2, 32)  # valid non-ASCII is fine


def test_lone_surrogate_in_a_pair_is_an_input_error(tiny_cross):
    ce = CrossEncoder(tiny_cross[1], device="cpu")
    with pytest.raises(InputError, match=r"inputs\[1\]\[1\] is not valid Unicode"):
        ce.predict([("a", "b"), ("a", "\ud800")])
    with pytest.raises(InputError, match="not valid Unicode"):
        ce.rank("\udc00", ["doc"])
    with pytest.raises(InputError, match=r"pair 0\[0\] is not valid Unicode"):
        ce.tokenizer.encode_pairs([("\ud800", "b")])


# ---------------------------------------------------------------------------------------------- 4. CLI
def _cli(capsys, *argv) -> tuple[int, str]:
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


def test_cli_invalid_utf8_input_is_a_typed_error(tiny_bert, tmp_path, capsys):
    src = tmp_path / "latin1.txt"
    src.write_bytes("first line\ncaf\xe9 au lait\n".encode("latin-1"))
    code, err = _cli(capsys, "encode", tiny_bert[1], "--input", src, "--output", tmp_path / "o.npy", "-q")
    assert code == 2 and err.startswith("error: InputError: ") and "line 2, byte 4" in err
    assert not list(tmp_path.glob("o.npy*"))
    code, err = _cli(capsys, "search", tiny_bert[1], "--corpus", src, "--query", "x")
    assert code == 2 and err.startswith("error: InputError: ") and "not valid UTF-8" in err
    code, err = _cli(capsys, "mine", tiny_bert[1], "--corpus", src)
    assert code == 2 and "not valid UTF-8" in err
    sts = tmp_path / "sts.tsv"
    sts.write_bytes("score\ts1\ts2\n1.0\tcaf\xe9\tau lait\n".encode("latin-1"))
    code, err = _cli(capsys, "eval", tiny_bert[1], "--sts", sts)
    assert code == 2 and f"{sts} is not valid UTF-8: line 2, byte 8" in err, err
    code, err = _cli(capsys, "bench", tiny_bert[1], "--corpus", src, "--limit", 5)
    assert code == 2 and f"{src} is not valid UTF-8: line 2" in err, err


def test_cli_bench_refuses_an_empty_corpus_or_a_directory(tiny_bert, tmp_path, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n", encoding="utf-8")
    code, err = _cli(capsys, "bench", tiny_bert[1], "--corpus", empty, "--limit", 5)
    assert code == 2 and "has no text" in err, err
    code, err = _cli(capsys, "bench", tiny_bert[1], "--corpus", tmp_path, "--limit", 5)
    assert code == 2 and "corpus file not found" in err and "(it is a directory)" in err, err


def test_cli_output_into_a_missing_directory(tiny_bert, tmp_path, capsys):
    src = tmp_path / "in.txt"
    src.write_text("a\nb\n", encoding="utf-8")
    code, err = _cli(capsys, "encode", tiny_bert[1], "--input", src, "--output", tmp_path / "nope" / "o.npy")
    assert code == 2 and err.startswith("error: InputError: --output") and "does not exist" in err
    code, err = _cli(
        capsys,
        "search",
        tiny_bert[1],
        "--corpus",
        src,
        "--query",
        "a",
        "--json",
        tmp_path / "nope" / "h.json",
    )
    assert code == 2 and err.startswith("error: InputError: --json")
    code, err = _cli(
        capsys, "encode", tiny_bert[1], "--input", tmp_path / "missing.txt", "--output", tmp_path / "o.npy"
    )
    assert code == 2 and err.startswith("error: InputError: input file not found")


def test_cli_bad_manifest_is_a_typed_error(export, tmp_path, capsys):
    _edit(export, lambda m: m.__setitem__("dim", "abc"))
    src = tmp_path / "in.txt"
    src.write_text("a\n", encoding="utf-8")
    for argv in (("encode", export, "--input", src, "--output", tmp_path / "o.npy"), ("info", export)):
        code, err = _cli(capsys, *argv)
        assert code == 2 and err.startswith("error: ArtifactError: ") and "field 'dim'" in err


# ------------------------------------------------------------------------------------ 5. manifest fields
@pytest.mark.parametrize(
    "change,match",
    [
        (lambda m: m.__setitem__("dim", "abc"), r"field 'dim' must be an int >= 1, got 'abc'"),
        (lambda m: m.__setitem__("dim", True), r"field 'dim' must be an int"),
        (lambda m: m["tokenizer"].pop("pad_token_id"), r"field 'tokenizer.pad_token_id' is missing"),
        (
            lambda m: m.__setitem__("max_seq_length", 100000),
            r"field 'max_seq_length' is 100000, more than the "
            r"graph's position limit 64",
        ),
        (lambda m: m.__setitem__("max_seq_length", 0), r"field 'max_seq_length' must be an int >= 1"),
        (
            lambda m: m["variants"]["fp32"].__setitem__("sha256", "abc"),
            r"field 'variants.fp32.sha256' must be a "
            r"sha256",
        ),
        (lambda m: m["variants"]["fp32"].pop("file"), r"field 'variants.fp32.file' is missing"),
        (lambda m: m.__setitem__("variants", {}), r"field 'variants' has no variant"),
        (lambda m: m.__setitem__("inputs", ["input_ids"]), r"field 'inputs' must include 'attention_mask'"),
        (lambda m: m.__setitem__("normalize", "yes"), r"field 'normalize' must be true or false"),
        (lambda m: m.__setitem__("task", "ner"), r"field 'task' must be"),
        (lambda m: m.__setitem__("default_prompt_name", "nope"), r"field 'default_prompt_name' is 'nope'"),
        (lambda m: m.__setitem__("tokenizer", "tokenizer.json"), r"field 'tokenizer' must be a JSON object"),
    ],
)
def test_bad_manifest_fields_are_named(export, change, match):
    _edit(export, change)
    with pytest.raises(ArtifactError, match=match):
        Encoder(export, device="cpu")


@pytest.mark.parametrize("native", [False, "auto"])
def test_manifest_is_checked_against_the_graph(export, native):
    _edit(export, lambda m: m.__setitem__("dim", 768))
    with pytest.raises(
        ArtifactError,
        match=r"output 'sentence_embedding' has shape \['batch', 32\], but the "
        r"manifest field 'dim' says 768",
    ):
        Encoder(export, device="cpu", native=native)


def test_manifest_inputs_are_checked_against_the_graph(export):
    _edit(export, lambda m: m.__setitem__("inputs", ["input_ids", "attention_mask", "token_type_ids"]))
    with pytest.raises(
        ArtifactError,
        match=r"has inputs \['input_ids', 'attention_mask'\], but the manifest "
        r"field 'inputs' says",
    ):
        Encoder(export, device="cpu", native=False)


def test_position_limit_is_recorded_from_the_graph(tiny_bert, tiny_factory):
    import onnx

    export_dir = tiny_bert[1]
    m = read_manifest(export_dir)
    model = onnx.load(str(export_dir / "model.onnx"), load_external_data=False)
    rows = [init.dims[0] for init in model.graph.initializer if "position_embeddings" in init.name]
    assert m.position_limit == rows[0] == 64
    roberta = read_manifest(tiny_factory(arch="roberta", pooling="mean")[1])
    assert roberta.position_limit == 64  # 66 rows, positions start after padding_idx 1


def test_cross_encoder_manifest_is_checked_against_the_graph(cross):
    _edit(cross, lambda m: m.__setitem__("num_labels", 3))
    with pytest.raises(
        ArtifactError, match=r"output 'scores' has shape .*manifest field 'num_labels' says 3"
    ):
        CrossEncoder(cross, device="cpu")


# ------------------------------------------------------------------------------------ 7. blank lines
def test_one_blank_line_rule_corpus_id_is_the_line_number(tiny_bert, tmp_path, capsys):
    lines = ["", "the model", "   ", "hello world", "", "a guitar on stage"]
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
    js = tmp_path / "hits.json"
    code, _ = _cli(
        capsys,
        "search",
        tiny_bert[1],
        "--corpus",
        corpus,
        "--query",
        "hello world",
        "--top-k",
        "6",
        "--json",
        js,
    )
    assert code == 0
    hits = json.loads(js.read_text())[0]["hits"]
    assert {h["corpus_id"] for h in hits} == {1, 3, 5}  # blank lines are never hits, but they are counted
    assert all(lines[h["corpus_id"]] == h["text"] for h in hits)
    out = tmp_path / "e.npy"
    assert main(["encode", str(tiny_bert[1]), "--input", str(corpus), "--output", str(out), "-q"]) == 0
    emb = np.load(out)
    assert emb.shape[0] == len(lines)  # row i is line i, blank lines included
    np.testing.assert_allclose(emb[3], Encoder(tiny_bert[1], device="cpu").encode("hello world"), atol=1e-6)
    capsys.readouterr()
    assert main(["mine", str(tiny_bert[1]), "--corpus", str(corpus), "--pairs", "10"]) == 0
    pairs = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert pairs and all(a.strip() and b.strip() for _, a, b in pairs)


# ---------------------------------------------------------------------------------------------- held before
@pytest.mark.parametrize(
    "bad,match",
    [
        (None, "None"),
        (b"bytes", "bytes"),
        (["ok", None], r"sentences\[1\] is NoneType"),
        ([["nested", "list"]], "nested list"),
        ({"a": 1}, "must be a str or a list"),
        (42, "must be a str or a list"),
    ],
)
def test_bad_input_catalogue(tiny_bert, bad, match):
    with pytest.raises(InputError, match=match):
        Encoder(tiny_bert[1], device="cpu").encode(bad)


@pytest.mark.parametrize(
    "bad,match",
    [
        ("one text", "not a pair"),
        ([("a",)], "has 1 elements"),
        ([("a", 3)], r"\[0\]\[1\] is int"),
        (None, "None"),
    ],
)
def test_bad_pair_catalogue(tiny_cross, bad, match):
    with pytest.raises(InputError, match=match):
        CrossEncoder(tiny_cross[1], device="cpu").predict(bad)


def test_corrupted_graphs_are_named_by_file(export):
    data = bytearray((export / "model.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (export / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match=r"sha256 mismatch for .*model.onnx"):
        Encoder(export, device="cpu", native=False)
    (export / "model.onnx").write_bytes(b"garbage")
    with pytest.raises(ArtifactError, match=r"onnxruntime could not load .*model.onnx"):
        Encoder(export, device="cpu", native=False, verify_checksum=False)


def test_eight_threads_give_what_one_gives(tiny_bert):
    enc = Encoder(tiny_bert[1], device="cpu")
    texts = [f"{TEXTS[i % len(TEXTS)]} {i}" for i in range(64)]
    expected = enc.encode(texts, batch_size=5)
    results: dict[int, np.ndarray] = {}

    def work(k: int) -> None:
        results[k] = enc.encode(texts, batch_size=3 + k)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 8
    for got in results.values():
        np.testing.assert_allclose(got, expected, atol=1e-6)


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="needs /proc")
def test_memory_stays_flat_over_repeated_calls(tiny_bert):
    enc = Encoder(tiny_bert[1], device="cpu")
    texts = [f"text number {i} " * (1 + i % 7) for i in range(64)]
    for _ in range(30):  # warm up: the arena reaches its working size
        enc.encode(texts)
    before = _rss_mib()
    for _ in range(300):
        enc.encode(texts)
    assert _rss_mib() - before < 16


@pytest.mark.slow
def test_export_is_atomic_under_sigint(tiny_factory, tmp_path):
    st_dir, _ = tiny_factory(export=False, arch="bert", pooling="mean")
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "embedrt.cli", "export", str(st_dir), "-o", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    for line in proc.stdout:  # interrupt once the staging directory exists and the graph is being written
        if "] verify" in line:
            proc.send_signal(signal.SIGINT)
            break
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_external_data_escaping_the_directory_is_refused(export, tmp_path):
    import onnx
    from onnx.external_data_helper import set_external_data

    model = onnx.load(str(export / "model.onnx"))
    big = max(model.graph.initializer, key=lambda t: len(t.raw_data))
    (tmp_path / "weights.bin").write_bytes(big.raw_data)
    set_external_data(big, location="../weights.bin", offset=0, length=len(big.raw_data))
    big.data_location = onnx.TensorProto.EXTERNAL
    big.ClearField("raw_data")
    onnx.save(model, str(export / "model.onnx"))
    _edit(export, lambda m: m["variants"]["fp32"].__setitem__("sha256", sha256_file(export / "model.onnx")))
    with pytest.raises(ArtifactError, match=r"onnxruntime could not load .*model.onnx"):
        Encoder(export, device="cpu", native=False)


def test_fused_pooling_keyword_is_a_deprecated_alias(tiny_bert):
    with pytest.warns(DeprecationWarning, match="fused_pooling=.*deprecated.*native="):
        enc = Encoder(tiny_bert[1], device="cpu", fused_pooling=False)
    assert enc.native is False and "native=False" in str(enc.graph_status)
    with pytest.warns(DeprecationWarning, match="Encoder.fused_pooling is deprecated"):
        assert enc.fused_pooling is False
    with pytest.warns(DeprecationWarning):
        assert enc.fused_pooling_status == str(enc.graph_status)
    with pytest.raises(InputError, match="disagree"), pytest.warns(DeprecationWarning):
        Encoder(tiny_bert[1], device="cpu", native=True, fused_pooling=False)


@pytest.mark.parametrize("planted", [0, -1e-3, 0.5, "1e-6", True])
def test_a_bad_probe_tolerance_is_refused_by_name(export, tmp_path, planted):
    if read_manifest(export).variants["fp32"].native is None:
        pytest.skip("this tiny export has no native graph")
    bad = _copy(export, tmp_path / "bad-atol")
    _edit(bad, lambda d: d["variants"]["fp32"]["native"].__setitem__("probe_atol", planted))
    with pytest.raises(ArtifactError, match=r"field 'variants.fp32.native.probe_atol' must be a number in"):
        read_manifest(bad)


def test_the_probe_tolerance_is_read_and_applied(export, tmp_path):
    if read_manifest(export).variants["fp32"].native is None:
        pytest.skip("this tiny export has no native graph")
    assert read_manifest(export).variants["fp32"].native.probe_atol == 1e-6  # absent: the float default
    # a tolerance no float graph can meet: the runtime checks the probe against it and falls back
    strict = _copy(export, tmp_path / "strict")

    def tighten(d):
        native = d["variants"]["fp32"]["native"]
        for entry in (native, native.get("packed")):  # the CPU may run the packed twin
            if entry is not None:
                entry["probe_atol"] = 1e-30

    _edit(strict, tighten)
    assert read_manifest(strict).variants["fp32"].native.probe_atol == 1e-30
    enc = Encoder(strict, device="cpu")
    if enc.native:  # the probe matched bit for bit: nothing to fall back from
        assert enc.graph_status.probe_max_abs_diff == 0.0
    else:
        assert "> 1e-30" in str(enc.graph_status)
