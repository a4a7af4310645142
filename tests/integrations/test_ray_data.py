"""Ray Data batch embedding: exact rows and ids, failures reported by id, resume without duplicates.

Runs a local Ray (``ray.init(num_cpus=2)``) once for the module; skipped where embedrt[ray] is not installed.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="needs embedrt[ray]")
pytest.importorskip("ray.data")
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from embedrt import Encoder  # noqa: E402
from embedrt.cli import main  # noqa: E402
from embedrt.errors import BatchEmbeddingError, InputError  # noqa: E402
from embedrt.integrations.ray import (  # noqa: E402
    FAILED_FILE,
    EmbedBatch,
    embed_dataset,
    read_input,
    read_output,
    written_ids,
)

pytestmark = pytest.mark.ray

N = 2000


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def qnli_2000(shared_data, tmp_path_factory):
    lines = (shared_data / "corpus-qnli.txt").read_text(encoding="utf-8").splitlines()[:N]
    assert len(lines) == N
    path = tmp_path_factory.mktemp("qnli") / "qnli-2000.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path, lines


def _check_exact(output, export_dir, texts, ids_expected):
    ids, emb = read_output(output)
    assert len(ids) == len(set(ids)), "an id was written twice"
    assert sorted(ids) == sorted(ids_expected)
    ref = Encoder(export_dir, device="cpu").encode(texts)
    by_id = dict(zip(ids_expected, range(len(ids_expected)), strict=True))
    got = np.empty_like(ref)
    got[[by_id[i] for i in ids]] = emb
    diff = np.abs(got - ref).max(axis=1)
    worst = int(diff.argmax())
    assert diff[worst] <= 1e-6, f"row {worst} ({texts[worst][:60]!r}) differs by {diff[worst]:.2e}"


def test_embed_batch_is_a_map_batches_callable_without_ray(tiny_bert):
    _, export_dir = tiny_bert
    texts = ["a short one", "a somewhat longer sentence about nothing at all", ""]
    udf = EmbedBatch(export_dir, device="cpu", id_column="id")
    out = udf({"id": np.array([7, 8, 9]), "text": np.array(texts, dtype=object)})
    assert out["embedding"].dtype == np.float32 and out["embedding"].shape == (3, udf.dim)
    np.testing.assert_allclose(out["embedding"], Encoder(export_dir, device="cpu").encode(texts), atol=1e-6)
    assert list(out["id"]) == [7, 8, 9]


def test_embed_batch_isolates_failed_rows_by_id(tiny_bert):
    _, export_dir = tiny_bert
    batch = {
        "id": np.array(["a", "b", "c"], dtype=object),
        "text": np.array(["fine", None, "also fine"], dtype=object),
    }
    rep = EmbedBatch(export_dir, device="cpu", id_column="id", on_error="report", retries=0)(batch)
    assert rep["error"][0] == "" and rep["error"][2] == "" and "InputError" in rep["error"][1]
    np.testing.assert_allclose(
        rep["embedding"][[0, 2]], Encoder(export_dir, device="cpu").encode(["fine", "also fine"]), atol=1e-6
    )
    with pytest.raises(BatchEmbeddingError, match=r"ids \['b'\]") as err:
        EmbedBatch(export_dir, device="cpu", id_column="id", on_error="raise")(batch)
    assert err.value.ids == ["b"]
    with pytest.raises(InputError, match="valid choices"):
        EmbedBatch(export_dir, device="cpu", on_error="ignore")


def test_qnli_2000_rows_equal_encoder_and_ids(local_ray, tiny_bert, qnli_2000, tmp_path):
    _, export_dir = tiny_bert
    path, lines = qnli_2000
    out = tmp_path / "out"
    res = embed_dataset(path, out, export_dir, concurrency=2, batch_size=256, device="cpu")
    assert (res.written_rows, res.skipped_rows, res.failed) == (N, 0, [])
    assert res.parts_written == -(-N // 256)
    _check_exact(out, export_dir, lines, list(range(N)))
    # the output is a plain parquet dataset: ids and a fixed-size float32 list per row
    table = pq.read_table(out)
    assert table.num_rows == N and table.schema.field("embedding").type.value_type == pa.float32()
    # a second run finds everything written and does nothing
    again = embed_dataset(path, out, export_dir, concurrency=2, batch_size=256, device="cpu")
    assert (again.written_rows, again.skipped_rows, again.parts_written) == (0, N, 0)


def test_rerun_after_interruption_writes_no_duplicates(local_ray, tiny_bert, qnli_2000, tmp_path):
    _, export_dir = tiny_bert
    path, lines = qnli_2000
    out = tmp_path / "out"

    class Interrupted(Exception):
        pass

    def stop_after_three_parts(done: int, total: int) -> None:
        if done >= 3 * 200:
            raise Interrupted

    with pytest.raises(Interrupted):
        embed_dataset(
            path,
            out,
            export_dir,
            concurrency=2,
            batch_size=200,
            device="cpu",
            progress=stop_after_three_parts,
        )
    first = written_ids(out)
    assert 0 < len(first) < N
    # a crash while a part was being written leaves only a hidden temp file; it must not count as done
    (out / ".part-deadbeef-000099.parquet.tmp").write_bytes(b"PAR1 half a file")
    res = embed_dataset(path, out, export_dir, concurrency=2, batch_size=200, device="cpu")
    assert res.skipped_rows == len(first) and res.written_rows == N - len(first)
    assert not list(out.glob(".*.tmp"))
    _check_exact(out, export_dir, lines, list(range(N)))


def test_jsonl_with_ids_reports_bad_rows_and_retries_them(local_ray, tiny_bert, tmp_path, capsys):
    _, export_dir = tiny_bert
    rows = [{"doc": f"d{i}", "body": f"text number {i}"} for i in range(40)]
    rows[5]["body"] = None
    rows[17]["body"] = 123
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "out"
    args = [
        "embed-dataset",
        str(src),
        str(out),
        "--model",
        str(export_dir),
        "--text-column",
        "body",
        "--id-column",
        "doc",
        "--batch-size",
        "16",
        "--device",
        "cpu",
        "-q",
    ]
    assert main(args) == 1
    failed = [json.loads(line) for line in (out / FAILED_FILE).read_text().splitlines()]
    assert sorted(f["id"] for f in failed) == ["d17", "d5"]
    assert "failed ids" in capsys.readouterr().err
    assert sorted(written_ids(out)) == sorted(r["doc"] for r in rows if isinstance(r["body"], str))
    # fix the input and re-run: only the two failed rows are embedded, and the failure file goes away
    rows[5]["body"], rows[17]["body"] = "now a text", "another text"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    assert main(args) == 0
    assert not (out / FAILED_FILE).exists()
    _check_exact(out, export_dir, [r["body"] for r in rows], [r["doc"] for r in rows])


def test_parquet_input_and_settings_mismatch(local_ray, tiny_bert, tmp_path):
    _, export_dir = tiny_bert
    texts = [f"sentence {i} in a parquet file" for i in range(30)]
    src = tmp_path / "in.parquet"
    pq.write_table(pa.table({"id": list(range(100, 130)), "text": texts}), src)
    out = tmp_path / "out"
    embed_dataset(src, out, export_dir, id_column="id", batch_size=8, device="cpu")
    _check_exact(out, export_dir, texts, list(range(100, 130)))
    with pytest.raises(InputError, match="other settings"):
        embed_dataset(
            src, out, export_dir, id_column="id", batch_size=8, device="cpu", normalize_embeddings=True
        )


@pytest.mark.parametrize("text", ["{not json", "[" * 5_000 + "]" * 5_000, "[1]"])
def test_corrupted_job_file_is_a_typed_error_before_any_work(tiny_bert, tmp_path, text):
    _, export_dir = tiny_bert
    src = tmp_path / "in.txt"
    src.write_text("a text\nanother\n", encoding="utf-8")
    out = tmp_path / "out"
    out.mkdir()
    (out / "_embedrt_job.json").write_text(text, encoding="utf-8")
    with pytest.raises(InputError, match="_embedrt_job.json is corrupted"):
        embed_dataset(src, out, export_dir, device="cpu")
    assert sorted(p.name for p in out.iterdir()) == ["_embedrt_job.json"]


def test_bad_truncate_dim_is_refused_before_ray_starts(tiny_bert, tmp_path):
    _, export_dir = tiny_bert
    src = tmp_path / "in.txt"
    src.write_text("a text\n", encoding="utf-8")
    for bad in (0, -3, 2.5, True):
        with pytest.raises(InputError, match="truncate_dim must be a positive int"):
            embed_dataset(src, tmp_path / "out", export_dir, device="cpu", truncate_dim=bad)
    assert not (tmp_path / "out").exists()


def test_read_input_errors_list_choices(tmp_path):
    bad = tmp_path / "in.csv"
    bad.write_text("x\n")
    with pytest.raises(InputError, match=r"valid choices: \['.txt', '.parquet', '.jsonl'\]"):
        read_input(bad)
    j = tmp_path / "in.jsonl"
    j.write_text('{"text": "a", "id": 1}\n{"text": "b", "id": 1}\n')
    with pytest.raises(InputError, match="duplicates"):
        read_input(j, id_column="id")
    with pytest.raises(InputError, match="column 'body' missing; this row has"):
        read_input(j, text_column="body")
    j.write_text('{"text": "a", "id": 1}\n{"text": "b", "id": "1"}\n')
    with pytest.raises(InputError, match="mix int and str"):
        read_input(j, id_column="id")
    txt = tmp_path / "in.txt"
    txt.write_text("a\n", encoding="utf-8")
    with pytest.raises(InputError, match="--text-column does not apply to a .txt input"):
        read_input(txt, text_column="body")
    t = tmp_path / "latin1.txt"
    t.write_bytes("a\ncaf\xe9\n".encode("latin-1"))
    with pytest.raises(InputError, match="latin1.txt is not valid UTF-8: line 2, byte 4"):
        read_input(t)
    j.write_text('{"text": "a"}\n' + "[" * 5_000 + "]" * 5_000 + "\n")
    with pytest.raises(InputError, match="in.jsonl:2: not valid JSON here: it nests too deeply"):
        read_input(j)


@pytest.mark.slow
def test_minilm_qnli_2000_rows_equal_encoder(local_ray, minilm_export, qnli_2000, tmp_path):
    path, lines = qnli_2000
    res = embed_dataset(path, tmp_path / "out", minilm_export, concurrency=2, batch_size=500, device="cpu")
    assert (res.written_rows, res.failed) == (N, [])
    _check_exact(tmp_path / "out", minilm_export, lines, list(range(N)))


def test_a_transient_batch_failure_is_retried(tiny_bert):
    _, export_dir = tiny_bert
    udf = EmbedBatch(export_dir, device="cpu", retries=1)
    real, calls = udf._encode, []

    def flaky(texts):
        calls.append(len(texts))
        if len(calls) == 1:
            raise RuntimeError("transient")
        return real(texts)

    udf._encode = flaky
    texts = ["one", "two", "three"]
    out = udf({"text": np.array(texts, dtype=object)})
    assert calls == [3, 3]  # the whole batch again, not row by row
    np.testing.assert_allclose(out["embedding"], Encoder(export_dir, device="cpu").encode(texts), atol=1e-6)


def test_a_failed_batch_inside_ray_raises_with_its_ids(local_ray, tiny_bert):
    from embedrt.integrations.ray import EmbedDatasetResult, _iter_results

    _, export_dir = tiny_bert
    ds = ray.data.from_items([{"id": "ok", "text": "fine"}, {"id": "bad", "text": None}])
    ds = ds.map_batches(
        EmbedBatch,
        fn_constructor_kwargs={
            "export_dir": str(export_dir),
            "device": "cpu",
            "id_column": "id",
            "on_error": "raise",
        },
        batch_size=2,
        compute=ray.data.ActorPoolStrategy(size=1),
        batch_format="numpy",
    )
    res = EmbedDatasetResult(output=export_dir, total_rows=2, skipped_rows=0, written_rows=0)
    with pytest.raises(BatchEmbeddingError, match=r"ids \['bad'\]") as err:
        list(_iter_results(ds, res))
    assert err.value.ids == ["bad"]


@pytest.mark.slow  # NOTE: a CLI subprocess that starts its own local Ray, killed and run again
def test_rerun_after_sigkill_of_the_cli_writes_no_duplicates(local_ray, tiny_bert, qnli_2000, tmp_path):
    """A real crash: the CLI (driver and its local Ray) is SIGKILLed mid-run, then the same command
    resumes."""
    import os
    import signal
    import subprocess
    import sys
    import time

    _, export_dir = tiny_bert
    path, lines = qnli_2000
    out = tmp_path / "out"
    cmd = [
        sys.executable,
        "-m",
        "embedrt.cli",
        "embed-dataset",
        str(path),
        str(out),
        "--model",
        str(export_dir),
        "--batch-size",
        "10",
        "--encode-batch-size",
        "1",
        "--device",
        "cpu",
        "-q",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while (
            len(list(out.glob("part-*.parquet"))) < 3 and proc.poll() is None and time.monotonic() < deadline
        ):
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and every Ray process it started
        proc.wait(timeout=30)
    first = written_ids(out)
    assert 0 < len(first) < N, f"the run was not interrupted mid-way ({len(first)} rows written)"
    res = embed_dataset(path, out, export_dir, batch_size=250, device="cpu")
    assert res.skipped_rows == len(first) and res.written_rows == N - len(first)
    _check_exact(out, export_dir, lines, list(range(N)))
