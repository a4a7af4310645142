"""Long-document retrieval: truncation against ``long_text="chunk"``, on passages longer than the window.

Run:  python benchmarks/long_text_retrieval.py [--export DIR] [--per-passage 16] [--passages 200]

corpus-qnli.txt holds (question, sentence) line pairs. Passages are ``--per-passage`` consecutive sentences
joined by spaces (all-MiniLM-L6-v2: about 500 tokens against its 256-token window); each question is a query
whose one relevant passage is the one holding its sentence. Reported: recall@1 and MRR@10 over all
queries, and recall@1 split by where the question's sentence starts: inside the first window (what
truncation sees) or after it. --export is an export of all-MiniLM-L6-v2 (made in a temp dir when absent).
"""

from __future__ import annotations

import argparse
import platform
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "data" / "corpus-qnli.txt"


def _task(per_passage: int, n_passages: int):
    lines = CORPUS.read_text(encoding="utf-8").splitlines()
    pairs = [(lines[i], lines[i + 1]) for i in range(0, len(lines) - 1, 2)]
    pairs = pairs[: per_passage * n_passages]
    passages, queries, gold, sentence_start = [], [], [], []
    for p in range(len(pairs) // per_passage):
        group = pairs[p * per_passage : (p + 1) * per_passage]
        text = ""
        for q, s in group:
            queries.append(q)
            gold.append(p)
            sentence_start.append(len(text))
            text += s + " "
        passages.append(text.strip())
    return passages, queries, np.array(gold), sentence_start


def _scores(q: np.ndarray, d: np.ndarray, gold: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    sim = q @ d.T
    order = np.argsort(-sim, axis=1)[:, :10]
    hit_rank = np.full(len(q), np.inf)
    for i in range(len(q)):
        where = np.flatnonzero(order[i] == gold[i])
        if where.size:
            hit_rank[i] = where[0] + 1
    return hit_rank == 1, np.where(np.isfinite(hit_rank), 1.0 / hit_rank, 0.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--export", default=None)
    ap.add_argument("--per-passage", type=int, default=16)
    ap.add_argument("--passages", type=int, default=200)
    args = ap.parse_args()
    from embedrt import Encoder

    export = args.export
    if export is None:
        from embedrt import export_model

        export = str(Path(tempfile.mkdtemp()) / "minilm")
        export_model("all-MiniLM-L6-v2", export)
    enc = Encoder(export, device="cpu")
    passages, queries, gold, starts = _task(args.per_passage, args.passages)
    counts = enc.count_tokens(passages)
    # NOTE: does the question's sentence start inside the first window? Count the tokens before it.
    prefix_tokens = enc.count_tokens([passages[g][: starts[i]] for i, g in enumerate(gold)]) - 1
    inside = prefix_tokens < enc.max_seq_length - 1
    q = enc.encode(queries, batch_size=64)
    width = enc.max_seq_length - 2
    settings = [
        ("truncate", "truncate", None),
        ("chunk, stride 3/4 window (default)", "chunk", None),
        ("chunk, stride 1/2 window", "chunk", width // 2),
        ("chunk, no overlap", "chunk", width),
    ]
    print(
        f"{len(passages)} passages ({int(np.median(counts))} tokens median, {int(counts.min())}-"
        f"{int(counts.max())}; window {enc.max_seq_length}), {len(queries)} queries, "
        f"{inside.mean():.0%} of them answered inside the first window; CPU {platform.machine()}"
    )
    print(
        "| passages embedded as | recall@1 | MRR@10 | recall@1, answer in window 1 | "
        "recall@1, answer after it |"
    )
    print("|---|---|---|---|---|")
    for name, mode, stride in settings:
        d = enc.encode(passages, batch_size=16, long_text=mode, chunk_stride=stride)
        r1, rr = _scores(q, d, gold)
        print(
            f"| {name} | {r1.mean():.3f} | {rr.mean():.3f} | {r1[inside].mean():.3f} | "
            f"{r1[~inside].mean():.3f} |"
        )


if __name__ == "__main__":
    main()
