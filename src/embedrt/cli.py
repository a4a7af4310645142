"""Command line: ``export-model`` and ``embedrt {export,encode,search,mine,eval,info}``."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from .errors import EmbedrtError, InputError
from .textfile import iter_lines

EPILOG = (
    "Every command exits 0 on success, 2 on a usage or embedrt error (the message says which). "
    "Input files are UTF-8, one text per line; line N is row / corpus_id N-1, blank lines included "
    "(search and mine never return a blank line)."
)


def _add_export_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "model",
        help="local sentence-transformers directory, hub id (org/name) or short name "
        "(all-MiniLM-L6-v2 means sentence-transformers/all-MiniLM-L6-v2)",
    )
    p.add_argument("-o", "--output", help="export directory to create (default: ./<model name>.embedrt)")
    p.add_argument("--force", action="store_true", help="replace an existing output directory")
    p.add_argument(
        "--atol",
        type=float,
        default=1e-5,
        help="max abs diff allowed against SentenceTransformer.encode (default: 1e-5)",
    )
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (default: 17)")
    p.add_argument(
        "--quantize",
        action="append",
        default=[],
        choices=["int8", "fp16"],
        help="add a variant beside fp32 (repeatable): int8 (per-token, batch-invariant, CPU) or "
        "fp16 (for GPU providers)",
    )
    p.add_argument(
        "--variants", default=None, help="comma-separated alternative to --quantize, e.g. fp32,int8,fp16"
    )
    p.add_argument(
        "--min-mean-cosine",
        type=float,
        default=0.99,
        help="quality gate: refuse a variant whose mean cosine to fp32 is lower (default 0.99)",
    )
    p.add_argument(
        "--min-cosine",
        type=float,
        default=0.95,
        help="quality gate: refuse a variant whose worst cosine to fp32 is lower (default 0.95)",
    )
    p.add_argument(
        "--calibration",
        default=None,
        help="text file of real sentences for the gate (default: a built-in sample)",
    )
    p.add_argument(
        "--eval-sts",
        default=None,
        help="STS file (score<TAB>s1<TAB>s2): Spearman of every variant goes into the manifest",
    )
    p.add_argument(
        "--int8-exclude",
        default="",
        help="comma-separated Linear roles kept fp32 in int8: attention, ffn_up, ffn_down (default: none)",
    )
    p.add_argument(
        "--int8-scheme",
        default="w7a8",
        choices=["w7a8", "w8a7", "w8a8-vnni"],
        help="int8 integer ranges: w7a8 (default: 7-bit weights x 8-bit activations) and w8a7 "
        "give the same vectors on every CPU; w8a8-vnni (8-bit x 8-bit) is exact only on CPUs "
        "with VNNI (elsewhere onnxruntime's int8 kernel saturates)",
    )
    p.add_argument(
        "--optimize",
        action="store_true",
        help="apply onnxruntime's offline transformer fusions (contrib ops, exact GELU); kept only if "
        "verification still holds (default off: no gain measured, and the graph stays portable)",
    )
    p.add_argument(
        "--task",
        choices=["auto", "embedding", "cross-encoder", "sparse", "multi-vector"],
        default="auto",
        help="what the model is (default auto: read from its configs; a *ForSequenceClassification "
        "checkpoint or a sentence-transformers CrossEncoder is a cross-encoder, a "
        "SparseEncoder is sparse, a MultiVectorEncoder multi-vector; a bare *ForMaskedLM "
        "needs --task sparse)",
    )
    p.add_argument(
        "--cross-encoder",
        dest="task",
        action="store_const",
        const="cross-encoder",
        help="export a cross-encoder (reranker): pairs -> scores; same as --task cross-encoder",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="print only the final line")


def _run_export(args: argparse.Namespace) -> int:
    from .export import export_model
    from .export.gate import GateThresholds
    from .export.quantize import ROLES, Int8Config

    output = args.output or f"{args.model.rstrip('/').split('/')[-1]}.embedrt"
    variants = ["fp32", *args.quantize]
    if args.variants:
        variants += [v.strip() for v in args.variants.split(",") if v.strip()]
    exclude = tuple(r for r in args.int8_exclude.split(",") if r)
    bad = [r for r in exclude if r not in ROLES]
    if bad:
        raise InputError(f"unknown --int8-exclude roles {bad}; valid choices: {list(ROLES)}")
    calibration = _read_lines(args.calibration) if args.calibration else None
    t0 = time.perf_counter()
    manifest = export_model(
        args.model,
        output,
        force=args.force,
        atol=args.atol,
        opset=args.opset,
        log=None if args.quiet else lambda m: print(m, flush=True),
        variants=variants,
        int8=Int8Config(exclude_roles=exclude, scheme=args.int8_scheme),
        thresholds=GateThresholds(args.min_mean_cosine, args.min_cosine),
        calibration=[c for c in calibration if c.strip()] if calibration is not None else None,
        eval_sts=args.eval_sts,
        optimize=args.optimize,
        task=None if args.task == "auto" else args.task,
    )
    fig = manifest["variants"]["fp32"]["verification"]
    if manifest.get("task") == "cross-encoder":
        print(
            f"exported cross-encoder {manifest['source']['model']} to {Path(output).absolute()} in "
            f"{time.perf_counter() - t0:.1f} s ({manifest['num_labels']} label(s), {manifest['activation']}, "
            f"max_seq_length {manifest['max_seq_length']}, max abs diff {fig['max_abs_diff']:.1e} vs "
            "CrossEncoder.predict)"
        )
        return 0
    if manifest.get("task") in ("sparse", "multi-vector"):
        print(
            f"exported {manifest['task']} encoder {manifest['source']['model']} to "
            f"{Path(output).absolute()} in {time.perf_counter() - t0:.1f} s (dim {manifest['dim']}, "
            f"max_seq_length {manifest['max_seq_length']}, max abs diff {fig['max_abs_diff']:.1e} vs "
            "sentence-transformers)"
        )
        return 0
    print(
        f"exported {manifest['source']['model']} to {Path(output).absolute()} "
        f"in {time.perf_counter() - t0:.1f} s "
        f"(dim {manifest['dim']}, max_seq_length {manifest['max_seq_length']}, "
        f"max abs diff {fig['max_abs_diff']:.1e} vs sentence-transformers)"
    )
    return 0


def _add_encoder_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("export_dir", help="directory written by export-model")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or tensorrt (default: auto)")
    p.add_argument("--variant", default="fp32", help="graph variant from the manifest (default: fp32)")
    p.add_argument(
        "--threads", type=int, default=None, help="onnxruntime intra-op threads (default: all cores)"
    )
    p.add_argument("--batch-size", type=int, default=32, help="texts per batch (default: 32)")


def _encoder(args: argparse.Namespace):
    from .runtime import Encoder

    return Encoder(args.export_dir, device=args.device, variant=args.variant, intra_op_threads=args.threads)


def _read_lines(path: str) -> list[str]:
    return list(iter_lines(path))


def _output_file(path: str, flag: str) -> Path:
    """``path`` as an output: its directory must exist and be writable.

    Raises:
        InputError: it does not, or ``path`` is a directory.
    """
    p = Path(path)
    parent = p.parent if str(p.parent) else Path(".")
    if p.is_dir():
        raise InputError(f"{flag} {p} is a directory; give a file name")
    if not parent.is_dir():
        raise InputError(f"{flag} {p}: directory {parent} does not exist (create it first)")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"{flag} {p}: directory {parent} is not writable")
    return p


def _non_blank(lines: list[str]) -> list[int]:
    """Line indices of the texts that are not blank (what search and mine index)."""
    return [i for i, t in enumerate(lines) if t.strip()]


def _run_encode(args: argparse.Namespace) -> int:
    import numpy as np

    enc = _encoder(args)
    out_path = _output_file(args.output, "--output")
    src = Path(args.input)
    # NOTE: the counting pass also checks the whole file is UTF-8 before anything is written
    n = sum(1 for _ in iter_lines(src))
    dim = enc.get_sentence_embedding_dimension()
    if args.truncate_dim:
        dim = min(dim, args.truncate_dim)
    tmp = out_path.with_name(out_path.name + ".partial.npy")
    # NOTE: stream: one counting pass, then chunks into a memory-mapped .npy, so memory stays at one chunk.
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n, dim))
    bar = _progress(n, args.quiet)
    done = 0
    try:
        chunk: list[str] = []
        for line in iter_lines(src):
            chunk.append(line)
            if len(chunk) == args.chunk_size:
                out[done : done + len(chunk)] = _encode_chunk(enc, chunk, args)
                done += len(chunk)
                bar(done)
                chunk = []
        if chunk:
            out[done : done + len(chunk)] = _encode_chunk(enc, chunk, args)
            done += len(chunk)
            bar(done)
        out.flush()
        del out
        tmp.replace(out_path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    print(f"wrote {n} x {dim} float32 embeddings to {out_path}", file=sys.stderr)
    return 0


def _encode_chunk(enc, chunk, args):
    return enc.encode(
        chunk,
        batch_size=args.batch_size,
        normalize_embeddings=args.normalize,
        truncate_dim=args.truncate_dim,
        prompt_name=args.prompt_name,
    )


def _progress(total: int, quiet: bool):
    if quiet:
        return lambda done: None
    try:
        from tqdm import tqdm
    except ImportError:
        t0 = time.perf_counter()

        def plain(done: int) -> None:
            rate = done / max(time.perf_counter() - t0, 1e-9)
            eta = (total - done) / rate if rate else 0
            print(
                f"\r{done}/{total} texts, {rate:.0f}/s, ETA {eta:.0f} s",
                end="" if done < total else "\n",
                file=sys.stderr,
                flush=True,
            )

        return plain
    bar = tqdm(total=total, unit="text", desc="encode")

    def update(done: int) -> None:
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    return update


def _run_search(args: argparse.Namespace) -> int:
    from .runtime import semantic_search

    enc = _encoder(args)
    cross = _cross_encoder(args) if args.rerank else None  # NOTE: loaded first, so a bad path fails fast
    json_path = _output_file(args.json, "--json") if args.json else None
    corpus = _read_lines(args.corpus)
    if args.limit:
        corpus = corpus[: args.limit]
    # NOTE: corpus_id is the line's index (blank lines count); blank lines are not indexed, so never a hit
    keep = _non_blank(corpus)
    t0 = time.perf_counter()
    corpus_emb = enc.encode([corpus[i] for i in keep], batch_size=args.batch_size)
    t1 = time.perf_counter()
    query_emb = enc.encode(args.query, batch_size=args.batch_size)
    retrieve_k = max(args.top_k, args.rerank_top_k) if args.rerank else args.top_k
    hits = semantic_search(query_emb, corpus_emb, top_k=retrieve_k) if keep else [[] for _ in args.query]
    hits = [[{**h, "corpus_id": keep[h["corpus_id"]]} for h in qhits] for qhits in hits]
    print(f"embedded {len(keep)} corpus texts in {t1 - t0:.1f} s", file=sys.stderr)
    if cross is not None:
        hits = _rerank(args, cross, corpus, hits)
    results = []
    for q, qhits in zip(args.query, hits, strict=True):
        print(f"\nQuery: {q}")
        for h in qhits:
            via = f"  (retrieval {h['retrieval_score']:.4f}, #{h['retrieval_rank'] + 1})" if cross else ""
            print(f"  {h['score']:.4f}{via}  {corpus[h['corpus_id']]}")
        results.append({"query": q, "hits": [{**h, "text": corpus[h["corpus_id"]]} for h in qhits]})
    if json_path is not None:
        json_path.write_text(json.dumps(results, indent=2, ensure_ascii=False), encoding="utf-8")
    return 0


def _cross_encoder(args: argparse.Namespace):
    from .runtime import CrossEncoder

    if args.rerank_top_k < 1:
        raise InputError(f"--rerank-top-k must be a positive int, got {args.rerank_top_k}")
    return CrossEncoder(args.rerank, device=args.device, intra_op_threads=args.threads)


def _rerank(args: argparse.Namespace, ce, corpus: list[str], hits: list[list[dict]]) -> list[list[dict]]:
    """Rerank each query's top --rerank-top-k retrieval hits with the cross-encoder; keep --top-k."""
    from .runtime import rerank_hits

    t0 = time.perf_counter()
    out = [
        rerank_hits(ce, q, qhits[: args.rerank_top_k], corpus, top_k=args.top_k, batch_size=args.batch_size)
        for q, qhits in zip(args.query, hits, strict=True)
    ]
    n = sum(min(len(h), args.rerank_top_k) for h in hits)
    print(f"reranked {n} pairs in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return out


def _run_mine(args: argparse.Namespace) -> int:
    from .runtime import paraphrase_mining_embeddings

    enc = _encoder(args)
    lines = _read_lines(args.corpus)[: args.limit]
    keep = _non_blank(lines)  # NOTE: the same rule as search: blank lines count as lines, never as a pair
    texts = [lines[i] for i in keep]
    t0 = time.perf_counter()
    emb = enc.encode(texts, batch_size=args.batch_size)
    t1 = time.perf_counter()
    pairs = paraphrase_mining_embeddings(emb, top_k=args.top_k, max_pairs=args.pairs)
    t2 = time.perf_counter()
    for score, i, j in pairs:
        print(f"{score:.4f}\t{texts[i]}\t{texts[j]}")
    print(
        f"{len(texts)} sentences: embed {t1 - t0:.1f} s + mine {t2 - t1:.1f} s = {t2 - t0:.1f} s "
        f"({enc.variant}, {enc.active_providers[0]})",
        file=sys.stderr,
    )
    return 0


def _run_cluster(args: argparse.Namespace) -> int:
    from .runtime import community_detection

    enc = _encoder(args)
    texts = [t for t in _read_lines(args.corpus) if t.strip()][: args.limit]
    t0 = time.perf_counter()
    emb = enc.encode(texts, batch_size=args.batch_size)
    t1 = time.perf_counter()
    clusters = community_detection(emb, threshold=args.threshold, min_community_size=args.min_size)
    t2 = time.perf_counter()
    for n, members in enumerate(clusters[: args.show]):
        print(f"cluster {n + 1}: {len(members)} sentences")
        for i in members[: args.per_cluster]:
            print(f"\t{texts[i]}")
    if args.json:
        Path(args.json).write_text(
            json.dumps([{"size": len(c), "ids": c} for c in clusters]) + "\n", encoding="utf-8"
        )
    print(
        f"{len(texts)} sentences, {len(clusters)} clusters: embed {t1 - t0:.1f} s + cluster "
        f"{t2 - t1:.1f} s ({enc.variant}, {enc.active_providers[0]})",
        file=sys.stderr,
    )
    return 0


def _run_eval(args: argparse.Namespace) -> int:
    from .evaluate import read_sts, sts_spearman
    from .runtime import Encoder

    s1, s2, gold = read_sts(args.sts)
    variants = args.variants.split(",") if args.variants else None
    from .manifest import read_manifest

    manifest = read_manifest(args.export_dir)
    rows = []
    for variant in variants or list(manifest.variants):
        enc = Encoder(args.export_dir, device=args.device, variant=variant)
        rows.append((f"embedrt {variant}", sts_spearman(enc.encode(s1), enc.encode(s2), gold)))
    if args.reference:
        from .export.graph import load_sentence_transformer
        from .export.resolve import resolve_model

        st = load_sentence_transformer(resolve_model(args.reference).path)
        rows.append(("sentence-transformers (PyTorch)", sts_spearman(st.encode(s1), st.encode(s2), gold)))
    print(f"STS Spearman x100 on {args.sts} ({len(gold)} pairs)")
    for name, value in rows:
        print(f"  {name:<34} {value:.4f}")
    return 0


def _int_list(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _run_bench(args: argparse.Namespace) -> int:
    from .bench import BenchConfig, run_bench
    from .bench.orchestrate import to_markdown, to_plot

    for flag, value in (("--json", args.json), ("--markdown", args.markdown), ("--plot", args.plot)):
        if value:
            _output_file(value, flag)  # NOTE: before the run, not after minutes of it
    if (args.corpus is None) == (args.pairs_from is None):
        raise InputError(
            "pass exactly one of --corpus (texts, for an embedding export) and --pairs-from "
            "(tab-separated pairs, for a cross-encoder export)"
        )
    cfg = BenchConfig(
        target=args.target,
        corpus=args.corpus or args.pairs_from,
        limit=args.limit,
        batch_sizes=args.batch_sizes,
        headline_batch_size=args.headline_batch_size,
        variants=args.variants.split(",") if args.variants else None,
        peers=[p for p in args.peers.split(",") if p] if args.peers is not None else None,
        repeats=args.repeats,
        latency_calls=args.latency_calls,
        sweep_limit=args.sweep_limit,
        peer_python=args.peer_python,
        workdir=args.workdir,
    )
    if cfg.peers is None:
        cfg.peers = ["st-torch", "st-onnx", "st-onnx-int8", "fastembed"]
    report = run_bench(cfg, quiet=args.quiet)
    md = to_markdown(report)
    print(md)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2), encoding="utf-8")
    if args.markdown:
        Path(args.markdown).write_text(md, encoding="utf-8")
    if args.plot:
        to_plot(report, args.plot)
    return 0


def _run_info(args: argparse.Namespace) -> int:
    from .manifest import read_manifest
    from .runtime.native import cpu_kernels

    m = read_manifest(args.export_dir)
    # NOTE: not part of the manifest: what this machine's CPU gives the native ops and the int8 GEMM
    print(
        json.dumps(
            {**m.to_dict(), "this_machine": {"cpu_kernels": cpu_kernels()}}, indent=2, ensure_ascii=False
        )
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="embedrt", description="Fast, exact sentence-transformers embeddings.", epilog=EPILOG
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("export", help="export a sentence-transformers model (same as export-model)")
    _add_export_args(p)
    p.set_defaults(func=_run_export)

    p = sub.add_parser("encode", help="embed a text file (one text per line) into a .npy matrix")
    _add_encoder_args(p)
    p.add_argument("--input", required=True, help="UTF-8 text file, one text per line")
    p.add_argument("--output", required=True, help=".npy file to write (float32, N x D)")
    p.add_argument("--normalize", action="store_true", help="L2-normalise the output")
    p.add_argument("--truncate-dim", type=int, default=None, help="keep the first N dimensions (Matryoshka)")
    p.add_argument("--prompt-name", default=None, help="prompt from the model's prompts to prepend")
    p.add_argument(
        "--chunk-size", type=int, default=8192, help="texts read and encoded at a time (default 8192)"
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_run_encode)

    p = sub.add_parser("search", help="semantic search: embed a corpus file, print the top hits per query")
    _add_encoder_args(p)
    p.add_argument("--corpus", required=True, help="UTF-8 text file, one document per line")
    p.add_argument("--query", required=True, action="append", help="query text (repeatable)")
    p.add_argument("--top-k", type=int, default=5, help="hits per query (default 5)")
    p.add_argument("--limit", type=int, default=None, help="use only the first N corpus lines")
    p.add_argument("--json", default=None, help="also write the hits as JSON")
    p.add_argument(
        "--rerank",
        default=None,
        metavar="CROSS_EXPORT_DIR",
        help="rerank the retrieved hits with this cross-encoder export (retrieve, then rerank)",
    )
    p.add_argument(
        "--rerank-top-k",
        type=int,
        default=100,
        help="retrieval hits per query passed to the cross-encoder (default 100)",
    )
    p.set_defaults(func=_run_search)

    p = sub.add_parser("mine", help="paraphrase mining: the most similar pairs in a corpus (the SBERT demo)")
    _add_encoder_args(p)
    p.add_argument("--corpus", required=True, help="UTF-8 text file, one sentence per line")
    p.add_argument("--limit", type=int, default=10_000, help="first N sentences (default 10000)")
    p.add_argument("--top-k", type=int, default=10, help="neighbours kept per sentence (default 10)")
    p.add_argument("--pairs", type=int, default=5, help="pairs to print (default 5)")
    p.set_defaults(func=_run_mine)

    p = sub.add_parser("cluster", help="community detection: groups of similar sentences in a corpus")
    _add_encoder_args(p)
    p.add_argument("--corpus", required=True, help="UTF-8 text file, one sentence per line")
    p.add_argument("--limit", type=int, default=None, help="first N sentences (default: all)")
    p.add_argument(
        "--threshold", type=float, default=0.75, help="cosine similarity of neighbours (default 0.75)"
    )
    p.add_argument("--min-size", type=int, default=10, help="smallest cluster (default 10)")
    p.add_argument("--show", type=int, default=10, help="clusters to print (default 10)")
    p.add_argument("--per-cluster", type=int, default=3, help="sentences printed per cluster (default 3)")
    p.add_argument("--json", default=None, help="also write every cluster's row ids as JSON")
    p.set_defaults(func=_run_cluster)

    p = sub.add_parser("eval", help="STS Spearman of every variant, optionally beside the original model")
    p.add_argument("export_dir")
    p.add_argument("--sts", required=True, help="score<TAB>sentence1<TAB>sentence2 file (e.g. stsb-dev.tsv)")
    p.add_argument("--variants", default=None, help="comma-separated variants (default: all in the manifest)")
    p.add_argument("--device", default="cpu")
    p.add_argument(
        "--reference", default=None, help="also score this sentence-transformers model (needs [export])"
    )
    p.set_defaults(func=_run_eval)

    p = sub.add_parser(
        "bench", help="throughput, latency, cold start, memory and agreement, side by side with peers"
    )
    p.add_argument("target", help="export directory, or a model to export first")
    p.add_argument("--corpus", default=None, help="UTF-8 text file, one text per line")
    p.add_argument(
        "--pairs-from",
        default=None,
        metavar="FILE",
        help="for a cross-encoder export: pairs, the last two tab-separated fields of each line "
        "(e.g. stsb-dev.tsv: score, s1, s2; a header line is skipped)",
    )
    p.add_argument("--limit", type=int, default=4000, help="first N lines (default 4000)")
    p.add_argument(
        "--batch-sizes", type=_int_list, default=[1, 8, 32, 128], help="sweep (default 1,8,32,128)"
    )
    p.add_argument(
        "--headline-batch-size", type=int, default=32, help="batch size of the main table (default 32)"
    )
    p.add_argument(
        "--sweep-limit", type=int, default=1000, help="texts for the non-headline batch sizes (default 1000)"
    )
    p.add_argument("--variants", default=None, help="embedrt variants (default: all in the manifest)")
    p.add_argument(
        "--peers",
        default=None,
        help="comma-separated: st-torch,st-onnx,st-onnx-int8,fastembed (default: all; '' for none)",
    )
    p.add_argument("--repeats", type=int, default=3, help="alternating repetitions (default 3)")
    p.add_argument(
        "--latency-calls", type=int, default=200, help="single-sentence calls for p50/p99 (default 200)"
    )
    p.add_argument(
        "--peer-python",
        default=None,
        help="interpreter for the peers (e.g. a venv with sentence-transformers + optimum); "
        "default: this one",
    )
    p.add_argument(
        "--workdir", default=None, help="cache for peer ONNX exports (default ~/.cache/embedrt/bench/...)"
    )
    p.add_argument("--json", default=None, help="write the full report as JSON")
    p.add_argument("--markdown", default=None, help="write the tables as markdown")
    p.add_argument("--plot", default=None, help="write throughput/latency plots as PNG (needs matplotlib)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_run_bench)

    # Scale-out on Ray (needs embedrt[ray]; ray itself is imported only when the command runs).
    from .integrations import ray as _ray_data
    from .integrations import serve as _ray_serve

    _ray_data.add_parser(sub)
    _ray_serve.add_parser(sub)

    p = sub.add_parser("info", help="print an export's manifest and this CPU's kernels")
    p.add_argument("export_dir")
    p.set_defaults(func=_run_info)

    from .native_build import add_command as add_build_ops

    add_build_ops(sub)
    return parser


def _dispatch(args: argparse.Namespace) -> int:
    try:
        return args.func(args)
    except EmbedrtError as e:
        print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
        return 2
    except (OSError, UnicodeError) as e:
        # NOTE: the paths are checked up front; this is what a file system can still do (full disk, a file
        # removed meanwhile): the user's environment, so reported like bad input, without a traceback
        print(f"error: {InputError.__name__}: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def main(argv: list[str] | None = None) -> int:
    """``embedrt`` entry point."""
    return _dispatch(build_parser().parse_args(argv))


def export_model_main(argv: list[str] | None = None) -> int:
    """``export-model`` entry point."""
    parser = argparse.ArgumentParser(
        prog="export-model",
        epilog=EPILOG,
        description="Export a sentence-transformers model to one verified ONNX graph (transformer, pooling, "
        "Dense, Normalize) with its tokenizer and an embedrt.json manifest. Steps: resolve, load, "
        "trace, verify, write. Nothing is left behind when a step fails.",
    )
    _add_export_args(parser)
    parser.set_defaults(func=_run_export)
    return _dispatch(parser.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
