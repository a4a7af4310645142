"""Batch embedding on Ray Data: ``EmbedBatch`` for ``Dataset.map_batches``, and the resumable
``embed_dataset`` job.

Importing this module is cheap (numpy only); ``ray`` and ``pyarrow`` are imported when a job runs, and a
missing install raises ``MissingDependencyError`` with ``pip install 'embedrt[ray]'``.

Job layout (``OUTPUT`` is a parquet dataset directory that pyarrow, pandas, Spark, DuckDB or Ray can read):

    OUTPUT/part-<run>-<seq>.parquet   id, embedding (fixed_size_list<float32>[D]); written atomically
    OUTPUT/_embedrt_job.json          model and options the rows were made with (a re-run must match)
    OUTPUT/_failed.jsonl              rows that failed in the last run, one {"id", "error"} per line
"""

from __future__ import annotations

import enum
import json
import os
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import BatchEmbeddingError, EmbedrtError, InputError
from ..runtime.util import check_positive_int
from ..textfile import iter_lines
from . import RAY_ENV, check_export, default_threads, require, require_ray

JOB_FILE = "_embedrt_job.json"
FAILED_FILE = "_failed.jsonl"
PART_GLOB = "part-*.parquet"
INPUT_FORMATS = (".txt", ".parquet", ".jsonl")


class OnError(enum.Enum):
    """What to do with rows that still fail after the retries."""

    RAISE = "raise"  #: raise BatchEmbeddingError naming the failed ids (the whole batch fails)
    REPORT = "report"  #: keep going; the failed rows come back with an error message and no embedding

    @classmethod
    def parse(cls, value: OnError | str) -> OnError:
        if isinstance(value, cls):
            return value
        try:
            return cls(value)
        except ValueError:
            raise InputError(f"unknown on_error {value!r}; valid choices: {[m.value for m in cls]}") from None


class EmbedBatch:
    """A callable class for ``Dataset.map_batches``: one ``Encoder`` per actor, a text column in, an embedding
    out.

    ``ds.map_batches(EmbedBatch, fn_constructor_kwargs={"export_dir": ...}, batch_size=256, concurrency=4,
    num_gpus=0)``. The batch (numpy format) comes back with ``embedding_column`` added: float32 ``(N, D)``.

    Args:
        export_dir: directory written by ``export-model``; must be readable at this path on every node.
        text_column: column holding the texts.
        embedding_column: column to write.
        id_column: column whose values name failed rows in errors (default: the row's position in the batch).
        device, variant, intra_op_threads: passed to ``Encoder``.
        encode_batch_size: rows per graph run inside a Ray batch.
        normalize_embeddings, truncate_dim: passed to ``Encoder.encode``.
        retries: extra attempts of a failed batch before its rows are tried one by one.
        on_error: ``"raise"`` or ``"report"`` (adds ``error_column``: ``""`` for good rows, the message for
            failed rows, whose embedding is all zeros and must not be used).
        error_column: column for ``on_error="report"``.

    Raises:
        BatchEmbeddingError: (``on_error="raise"``) rows failed after the retries; the message names their
        ids.
    """

    def __init__(
        self,
        export_dir: str | os.PathLike,
        *,
        text_column: str = "text",
        embedding_column: str = "embedding",
        id_column: str | None = None,
        device: str = "auto",
        variant: str = "fp32",
        intra_op_threads: int | None = None,
        encode_batch_size: int = 32,
        normalize_embeddings: bool = False,
        truncate_dim: int | None = None,
        retries: int = 1,
        on_error: OnError | str = OnError.RAISE,
        error_column: str = "error",
    ) -> None:
        from ..runtime import Encoder

        self.encoder = Encoder(
            export_dir,
            device=device,
            variant=variant,
            intra_op_threads=intra_op_threads,
            truncate_dim=truncate_dim,
        )
        self.text_column, self.embedding_column, self.id_column = text_column, embedding_column, id_column
        self.encode_batch_size = encode_batch_size
        self.normalize_embeddings = normalize_embeddings
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise InputError(f"retries must be a non-negative int, got {retries!r}")
        self.retries = retries
        self.on_error = OnError.parse(on_error)
        self.error_column = error_column
        self.dim = self.encoder.get_sentence_embedding_dimension()

    def _encode(self, texts: list) -> np.ndarray:
        return self.encoder.encode(
            texts, batch_size=self.encode_batch_size, normalize_embeddings=self.normalize_embeddings
        )

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.text_column not in batch:
            raise InputError(f"text column {self.text_column!r} not in the batch; columns: {sorted(batch)}")
        texts = list(batch[self.text_column])
        emb: np.ndarray | None = None
        last: Exception | None = None
        for _ in range(1 + self.retries):
            try:
                emb = self._encode(texts)
                break
            except Exception as e:  # noqa: BLE001 - any failure is retried, then isolated row by row below
                last = e
        errors = [""] * len(texts)
        if emb is None:
            # NOTE: isolate the bad rows instead of failing (or dropping) the whole batch: good rows still get
            # their embedding, and each failed row is named with its own error.
            emb = np.zeros((len(texts), self.dim), dtype=np.float32)
            for i, t in enumerate(texts):
                try:
                    emb[i] = self._encode([t])[0]
                except Exception as e:  # noqa: BLE001 - reported per row below
                    errors[i] = f"{type(e).__name__}: {e}"
            # NOTE: when every row worked alone (a transient batch failure), errors stay empty: rows kept
            if any(errors) and self.on_error is OnError.RAISE:
                ids = batch[self.id_column] if self.id_column in batch else np.arange(len(texts))
                bad = [_py(ids[i]) for i, err in enumerate(errors) if err]
                first = next(err for err in errors if err)
                raise BatchEmbeddingError(
                    f"{len(bad)} of {len(texts)} rows failed after {self.retries} "
                    f"retries (ids {bad[:20]}{' ...' if len(bad) > 20 else ''}); "
                    f"first error: {first}; batch error: {last!r}",
                    ids=bad,
                )
        out = dict(batch)
        out[self.embedding_column] = emb
        if self.on_error is OnError.REPORT:
            out[self.error_column] = np.array(errors, dtype=object)
        return out


def _py(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


# ---------------------------------------------------------------------------------------------- the job
@dataclass
class EmbedDatasetResult:
    """What one ``embed_dataset`` run did."""

    output: Path
    total_rows: int
    skipped_rows: int  #: already in OUTPUT from an earlier run
    written_rows: int
    failed: list[dict] = field(default_factory=list)  #: [{"id": ..., "error": ...}]
    parts_written: int = 0
    seconds: float = 0.0


def _require_pyarrow() -> Any:
    return require("pyarrow", "pyarrow")


def read_input(
    path: str | os.PathLike, text_column: str = "text", id_column: str | None = None
) -> tuple[list, list]:
    """Read ids and texts from a ``.txt`` (one text per line, id = 0-based line number), ``.parquet`` or
    ``.jsonl``.

    Returns:
        (ids, texts). Texts are returned as found (a non-str value is reported as a failed row by the job).

    Raises:
        InputError: a missing file, an unknown format, a missing column, or missing/duplicate ids.
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"input not found: {p}")
    fmt = ".parquet" if p.is_dir() else p.suffix.lower()
    if fmt not in INPUT_FORMATS:
        raise InputError(
            f"unknown input format {p.suffix!r} for {p}; valid choices: {list(INPUT_FORMATS)} "
            "(a directory is read as parquet)"
        )
    if fmt == ".txt":
        if id_column is not None:
            raise InputError("--id-column does not apply to a .txt input (the id is the 0-based line number)")
        if text_column != "text":
            raise InputError("--text-column does not apply to a .txt input (each line is one text)")
        texts = [line.rstrip("\r") for line in iter_lines(p)]
        return list(range(len(texts))), texts
    if fmt == ".parquet":
        _require_pyarrow()
        import pyarrow.parquet as pq

        schema_names = pq.read_schema(p).names if p.is_file() else pq.ParquetDataset(p).schema.names
        for col in (text_column, id_column):
            if col is not None and col not in schema_names:
                raise InputError(f"column {col!r} not in {p}; columns: {schema_names}")
        table = pq.read_table(p, columns=[c for c in (id_column, text_column) if c])
        texts = table.column(text_column).to_pylist()
        ids = table.column(id_column).to_pylist() if id_column else list(range(len(texts)))
    else:
        ids, texts = [], []
        for n, line in enumerate(iter_lines(p), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise InputError(f"{p}:{n}: not valid JSON: {e}") from e
            except RecursionError:  # NOTE: json's decoder recurses once per nested array or object
                raise InputError(f"{p}:{n}: not valid JSON here: it nests too deeply") from None
            if not isinstance(row, dict):
                raise InputError(f"{p}:{n}: expected a JSON object, got {type(row).__name__}")
            for col in (text_column, id_column):
                if col is not None and col not in row:
                    raise InputError(f"{p}:{n}: column {col!r} missing; this row has: {sorted(row)}")
            texts.append(row[text_column])
            ids.append(row[id_column] if id_column else len(ids))
    bad = [i for i in ids if not isinstance(i, (int, str)) or isinstance(i, bool)]
    if bad:
        raise InputError(f"ids must be int or str; got {bad[:5]!r} in column {id_column!r}")
    if len({type(i) for i in ids}) > 1:  # one parquet column holds them
        raise InputError(f"ids in column {id_column!r} mix int and str; make them all one type")
    if len(set(ids)) != len(ids):
        seen: set = set()
        dup = [i for i in ids if i in seen or seen.add(i)]
        raise InputError(f"ids must be unique (resuming is keyed by id); duplicates: {dup[:10]!r}")
    return ids, texts


def _job_settings(
    export_dir: Path,
    variant: str,
    text_column: str,
    id_column: str | None,
    normalize_embeddings: bool,
    truncate_dim: int | None,
) -> dict:
    m = check_export(export_dir, variant)
    if truncate_dim is not None:
        # NOTE: here, before Ray starts: in the workers it would fail every actor's creation instead
        check_positive_int(truncate_dim, "truncate_dim")
    return {
        "model_sha256": m.variants[variant].sha256,
        "model": m.source_model,
        "variant": variant,
        "text_column": text_column,
        "id_column": id_column,
        "normalize_embeddings": bool(normalize_embeddings),
        "truncate_dim": truncate_dim,
    }


def written_ids(output: str | os.PathLike) -> list:
    """Ids already in an ``embed_dataset`` output directory (every finished part file)."""
    pa = _require_pyarrow()
    import pyarrow.parquet as pq

    ids: list = []
    for part in sorted(Path(output).glob(PART_GLOB)):
        ids.extend(pq.read_table(part, columns=["id"]).column("id").to_pylist())
    del pa
    return ids


def read_output(output: str | os.PathLike) -> tuple[list, np.ndarray]:
    """Read an ``embed_dataset`` output back as (ids, float32 ``(N, D)``), in the order the parts list
    them."""
    pa = _require_pyarrow()
    import pyarrow.parquet as pq

    parts = sorted(Path(output).glob(PART_GLOB))
    if not parts:
        return [], np.zeros((0, 0), dtype=np.float32)
    table = pa.concat_tables([pq.read_table(p) for p in parts])
    emb = table.column("embedding").combine_chunks()
    dim = emb.type.list_size
    return table.column("id").to_pylist(), emb.flatten().to_numpy().reshape(-1, dim).astype(
        np.float32, copy=False
    )


def _write_part(output: Path, name: str, ids: list, emb: np.ndarray) -> None:
    pa = _require_pyarrow()
    import pyarrow.parquet as pq

    emb = np.ascontiguousarray(emb, dtype=np.float32)
    col = pa.FixedSizeListArray.from_arrays(pa.array(emb.reshape(-1), type=pa.float32()), emb.shape[1])
    table = pa.table({"id": pa.array(ids), "embedding": col})
    # NOTE: temp name + rename: a part is either complete or absent, so an interrupted run never leaves half a
    # file that a re-run would count as done. The leading dot keeps readers (pyarrow, Spark) from listing it.
    tmp = output / f".{name}.tmp"
    pq.write_table(table, tmp)
    os.replace(tmp, output / name)


def embed_dataset(
    input: str | os.PathLike,
    output: str | os.PathLike,
    export_dir: str | os.PathLike,
    *,
    text_column: str = "text",
    id_column: str | None = None,
    ray_address: str | None = None,
    concurrency: int = 1,
    batch_size: int = 256,
    encode_batch_size: int = 32,
    num_cpus: float = 1,
    num_gpus: float = 0,
    device: str = "auto",
    variant: str = "fp32",
    threads: int | None = None,
    normalize_embeddings: bool = False,
    truncate_dim: int | None = None,
    retries: int = 1,
    on_error: OnError | str = OnError.REPORT,
    quiet: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> EmbedDatasetResult:
    """Embed a text file, parquet or jsonl with Ray Data into a parquet dataset of ids and embeddings;
    resumable.

    Rows whose id is already in ``output`` are skipped, so a re-run after an interruption (or after rows
    failed)
    embeds only what is missing and never writes an id twice. Without ``ray_address`` (and with no Ray running
    in
    this process) a local Ray is started and shut down afterwards.

    Args:
        input: ``.txt`` (id = 0-based line number), ``.parquet`` (file or directory) or ``.jsonl``.
        output: directory to create or resume.
        export_dir: the export; on a cluster it must exist at this path on every node.
        text_column, id_column: columns of a parquet/jsonl input (id default: row number).
        ray_address: ``ray.init`` address (``auto``, ``ray://host:10001``, ...); None starts a local Ray.
        concurrency: Encoder actors.
        batch_size: rows per Ray batch (and per part file).
        encode_batch_size: rows per graph run inside a batch.
        num_cpus, num_gpus: resources per actor (``num_gpus>0`` with ``device="cuda"`` for GPU actors).
        threads: onnxruntime intra-op threads per actor (default: ``num_cpus`` on CPU).
        retries, on_error: see ``EmbedBatch``; ``report`` (default) records failures in ``_failed.jsonl``.
        progress: called as ``progress(rows_done, rows_total)`` after each part is written.

    Returns:
        EmbedDatasetResult.

    Raises:
        InputError: bad input, columns, ids, arguments, or an output written with other settings.
        BatchEmbeddingError: (``on_error="raise"``) a batch failed; parts written before it are kept.
        MissingDependencyError: ray or pyarrow is not installed.
    """
    t0 = time.perf_counter()
    export_dir, output = Path(export_dir).absolute(), Path(output)
    on_error = OnError.parse(on_error)
    for name, value in (
        ("concurrency", concurrency),
        ("batch_size", batch_size),
        ("encode_batch_size", encode_batch_size),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise InputError(f"{name} must be a positive int, got {value!r}")
    settings = _job_settings(export_dir, variant, text_column, id_column, normalize_embeddings, truncate_dim)
    _require_pyarrow()
    ids, texts = read_input(input, text_column, id_column)

    if output.exists() and not output.is_dir():
        raise InputError(f"output {output} exists and is not a directory")
    output.mkdir(parents=True, exist_ok=True)
    job_file = output / JOB_FILE
    if job_file.is_file():
        try:
            before = json.loads(job_file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError, RecursionError) as e:
            raise InputError(
                f"{job_file} is corrupted ({type(e).__name__}); use a new output directory or delete it"
            ) from None
        if not isinstance(before, dict):
            raise InputError(
                f"{job_file} is corrupted (not a JSON object); use a new output directory or delete it"
            )
        diff = {k: (before.get(k), v) for k, v in settings.items() if before.get(k) != v}
        if diff:
            raise InputError(
                f"{output} holds rows made with other settings {diff} (was, now); use a new output directory"
            )
    else:
        job_file.write_text(json.dumps(settings, indent=2), encoding="utf-8")
    for stale in output.glob(".part-*.tmp"):  # a part that an interrupted run did not finish
        stale.unlink()

    done = set(written_ids(output))
    total = len(ids)
    todo = [(i, t) for i, t in zip(ids, texts, strict=True) if i not in done]
    result = EmbedDatasetResult(
        output=output, total_rows=total, skipped_rows=total - len(todo), written_rows=0
    )
    # NOTE: non-str texts (null, numbers in a jsonl) fail here, by id, before any Ray work: reported, not
    # dropped.
    failed = [
        {"id": i, "error": f"InputError: text is {type(t).__name__}, expected str"}
        for i, t in todo
        if not isinstance(t, str)
    ]
    todo = [(i, t) for i, t in todo if isinstance(t, str)]
    result.failed = failed
    try:
        if todo:
            _run_ray(
                todo,
                output,
                export_dir,
                result,
                ray_address=ray_address,
                concurrency=concurrency,
                batch_size=batch_size,
                num_cpus=num_cpus,
                num_gpus=num_gpus,
                quiet=quiet,
                progress=progress,
                udf_kwargs=dict(
                    text_column="text",
                    embedding_column="embedding",
                    id_column="id",
                    device=device,
                    variant=variant,
                    intra_op_threads=default_threads(threads, num_cpus, num_gpus),
                    encode_batch_size=encode_batch_size,
                    normalize_embeddings=normalize_embeddings,
                    truncate_dim=truncate_dim,
                    retries=retries,
                    on_error=on_error.value,
                ),
            )
    finally:
        _write_failed(output, result.failed)
        result.seconds = time.perf_counter() - t0
    return result


def _write_failed(output: Path, failed: list[dict]) -> None:
    path = output / FAILED_FILE
    if not failed:
        path.unlink(missing_ok=True)
        return
    tmp = output / f".{FAILED_FILE}.tmp"
    tmp.write_text("".join(json.dumps(f, ensure_ascii=False) + "\n" for f in failed), encoding="utf-8")
    os.replace(tmp, path)


def _run_ray(
    todo: list[tuple[Any, str]],
    output: Path,
    export_dir: Path,
    result: EmbedDatasetResult,
    *,
    ray_address: str | None,
    concurrency: int,
    batch_size: int,
    num_cpus: float,
    num_gpus: float,
    quiet: bool,
    progress: Callable[[int, int], None] | None,
    udf_kwargs: dict,
) -> None:
    ray = require_ray()
    require("ray.data", "Ray Data")
    pa = _require_pyarrow()

    started = False
    if not ray.is_initialized():
        ray.init(
            address=ray_address,
            log_to_driver=not quiet,
            include_dashboard=False if ray_address is None else None,
            runtime_env=RAY_ENV,
        )
        started = True
    try:
        ctx = ray.data.DataContext.get_current()
        if quiet:
            ctx.enable_progress_bars = False
        # NOTE: one block per batch, cut here on the driver: blocks are the unit Ray hands to an actor, so
        # this
        # spreads the work over `concurrency` actors and makes every output batch a whole input slice.
        ids = [i for i, _ in todo]
        texts = [t for _, t in todo]
        blocks = [
            pa.table(
                {
                    "id": pa.array(ids[s : s + batch_size]),
                    "text": pa.array(texts[s : s + batch_size], type=pa.string()),
                }
            )
            for s in range(0, len(todo), batch_size)
        ]
        ds = ray.data.from_arrow(blocks)
        remote_args: dict[str, Any] = {"num_cpus": num_cpus}
        if num_gpus:
            remote_args["num_gpus"] = num_gpus
        ds = ds.map_batches(
            EmbedBatch,
            fn_constructor_kwargs={"export_dir": str(export_dir), **udf_kwargs},
            batch_size=batch_size,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=concurrency),
            **remote_args,
        )
        run = uuid.uuid4().hex[:8]
        seq = 0
        done = result.skipped_rows
        for batch in _iter_results(ds, result):
            bids = [_py(i) for i in batch["id"]]
            errors = batch.get("error")
            ok = np.ones(len(bids), dtype=bool)
            if errors is not None:
                ok = np.array([not e for e in errors], dtype=bool)
                result.failed.extend({"id": bids[k], "error": str(errors[k])} for k in np.flatnonzero(~ok))
            if ok.any():
                # NOTE: only the driver writes, one part per output batch, and only ids not yet present: so no
                # id is written twice, even when Ray retries a task or restarts an actor.
                kept = [b for b, k in zip(bids, ok, strict=True) if k]
                _write_part(output, f"part-{run}-{seq:06d}.parquet", kept, np.asarray(batch["embedding"])[ok])
                seq += 1
                result.parts_written += 1
                result.written_rows += int(ok.sum())
            done += len(bids)
            if progress is not None:
                progress(done, result.total_rows)
    finally:
        if started:
            ray.shutdown()


def _iter_results(ds: Any, result: EmbedDatasetResult) -> Any:
    """``ds.iter_batches`` with Ray's wrapped errors turned into BatchEmbeddingError (the caller's own
    errors pass)."""
    ctx = getattr(ds, "context", None)
    if ctx is not None and hasattr(ctx, "raise_original_map_exception"):
        # NOTE: otherwise Ray Data (2.5x+) hands the driver a UserCodeException that has lost our error and
        # its ids
        ctx.raise_original_map_exception = True
    it = iter(ds.iter_batches(batch_size=None, batch_format="numpy"))
    while True:
        try:
            batch = next(it)
        except StopIteration:
            return
        except EmbedrtError:
            raise
        except Exception as e:  # noqa: BLE001 - Ray wraps the UDF's error in its own exception types
            cause = _find_cause(e)
            if isinstance(cause, BatchEmbeddingError):
                raise BatchEmbeddingError(
                    f"{cause}; {result.written_rows} rows written before it are kept, a re-run resumes",
                    ids=cause.ids,
                ) from e
            raise BatchEmbeddingError(
                f"the Ray job failed after {result.written_rows} rows were written (kept; "
                f"a re-run resumes): {type(e).__name__}: {e}"
            ) from e
        yield batch


def _find_cause(e: BaseException) -> BaseException:
    seen = 0
    cur: BaseException | None = e
    while cur is not None and seen < 10:
        if isinstance(cur, EmbedrtError):
            return cur
        nxt = getattr(cur, "cause", None)
        cur = nxt if isinstance(nxt, BaseException) else (cur.__cause__ or cur.__context__)
        seen += 1
    return e


def run_cli(args: Any) -> int:
    """``embedrt embed-dataset``: run the job, print a summary; exit 1 when rows failed."""

    def bar(done: int, total: int) -> None:
        print(f"\r{done}/{total} rows", end="" if done < total else "\n", file=sys.stderr, flush=True)

    res = embed_dataset(
        args.input,
        args.output,
        args.export_dir,
        text_column=args.text_column,
        id_column=args.id_column,
        ray_address=args.ray_address,
        concurrency=args.concurrency,
        batch_size=args.batch_size,
        encode_batch_size=args.encode_batch_size,
        num_cpus=args.num_cpus,
        num_gpus=args.num_gpus,
        device=args.device,
        variant=args.variant,
        threads=args.threads,
        normalize_embeddings=args.normalize,
        truncate_dim=args.truncate_dim,
        retries=args.retries,
        on_error=args.on_error,
        quiet=args.quiet,
        progress=None if args.quiet else bar,
    )
    print(
        f"{res.output}: {res.written_rows} rows written in {res.parts_written} parts, "
        f"{res.skipped_rows} already "
        f"there, {len(res.failed)} failed, of {res.total_rows} ({res.seconds:.1f} s)",
        file=sys.stderr,
    )
    if res.failed:
        print(
            f"failed ids (see {res.output / FAILED_FILE}; a re-run retries them): "
            f"{[f['id'] for f in res.failed[:20]]}",
            file=sys.stderr,
        )
        return 1
    return 0


def add_parser(sub: Any) -> None:
    """Register ``embed-dataset`` on the ``embedrt`` subcommand parser."""
    p = sub.add_parser(
        "embed-dataset", help="embed a .txt/.parquet/.jsonl with Ray Data into parquet (resumable)"
    )
    p.add_argument(
        "input", help=".txt (one text per line, id = 0-based line number), .parquet (file or dir), .jsonl"
    )
    p.add_argument("output", help="parquet dataset directory (id, embedding); an existing one is resumed")
    p.add_argument(
        "--model", dest="export_dir", required=True, help="export directory written by export-model"
    )
    p.add_argument(
        "--text-column", default="text", help="text column of a parquet/jsonl input (default: text)"
    )
    p.add_argument("--id-column", default=None, help="id column (default: the row number)")
    p.add_argument(
        "--ray-address",
        default=None,
        help="Ray cluster address (auto, ray://host:10001, ...); default: start a local Ray",
    )
    p.add_argument("--concurrency", type=int, default=1, help="Encoder actors (default 1)")
    p.add_argument(
        "--batch-size", type=int, default=256, help="rows per Ray batch and per part file (default 256)"
    )
    p.add_argument("--encode-batch-size", type=int, default=32, help="rows per graph run (default 32)")
    p.add_argument("--num-cpus", type=float, default=1, help="CPUs per actor (default 1)")
    p.add_argument(
        "--num-gpus", type=float, default=0, help="GPUs per actor (default 0; use with --device cuda)"
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or tensorrt (default: auto)")
    p.add_argument("--variant", default="fp32", help="graph variant from the manifest (default: fp32)")
    p.add_argument(
        "--threads", type=int, default=None, help="onnxruntime threads per actor (default: --num-cpus)"
    )
    p.add_argument("--normalize", action="store_true", help="L2-normalise the output")
    p.add_argument("--truncate-dim", type=int, default=None, help="keep the first N dimensions (Matryoshka)")
    p.add_argument("--retries", type=int, default=1, help="extra attempts of a failed batch (default 1)")
    p.add_argument(
        "--on-error",
        default="report",
        choices=[m.value for m in OnError],
        help="report: write failed ids to OUTPUT/_failed.jsonl and exit 1; raise: stop (default: report)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=run_cli)
