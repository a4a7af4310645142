"""A passage corpus for retrieval-shaped benchmarks: consecutive corpus lines joined into passages of 150–500
tokens.

Run: python benchmarks/make_passages.py EXPORT_DIR -o passages.txt [--corpus corpus-qnli.txt]
     [--min-tokens 150] [--max-tokens 500] [--seed 0] [--limit N]

Tokens are counted with the export's own tokenizer, as ``Encoder.count_tokens`` counts them (special tokens
included, before truncation). Walking the corpus in order, each passage gets a target length drawn uniformly
from [--min-tokens, --max-tokens] (seeded: the same corpus and export give the same file), and takes
consecutive lines, joined by a space, until it reaches its target; a line that would carry it past
--max-tokens closes it instead (and starts the next one). A passage that cannot reach --min-tokens that way,
or a line longer than --max-tokens alone, is dropped. One passage per line; it prints how many, their token
lengths and how many the model truncates (beyond its max_seq_length). ``embedrt bench EXPORT --corpus
passages.txt`` then takes the file like any corpus.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def make_passages(
    lines: list[str],
    count,
    min_tokens: int = 150,
    max_tokens: int = 500,
    seed: int = 0,
    limit: int | None = None,
) -> list[str]:
    """Passages of ``min_tokens``–``max_tokens`` tokens from consecutive ``lines``; ``count(text)`` gives a
    text's tokens."""
    if not 0 < min_tokens <= max_tokens:
        raise ValueError(f"need 0 < min_tokens <= max_tokens, got {min_tokens}, {max_tokens}")
    rng = np.random.default_rng(seed)
    passages: list[str] = []
    parts: list[str] = []
    target = int(rng.integers(min_tokens, max_tokens + 1))
    for line in lines:
        line = line.strip()
        if not line:
            continue
        candidate = " ".join([*parts, line])
        n = count(candidate)
        if n <= max_tokens:
            parts.append(line)
            if n >= target:
                passages.append(candidate)
                parts = []
                target = int(rng.integers(min_tokens, max_tokens + 1))
        else:
            if parts and count(" ".join(parts)) >= min_tokens:
                passages.append(" ".join(parts))
                target = int(rng.integers(min_tokens, max_tokens + 1))
            parts = [line] if count(line) <= max_tokens else []
        if limit is not None and len(passages) >= limit:
            break
    return passages


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("export_dir", help="an embedrt export: its tokenizer counts the tokens")
    ap.add_argument("-o", "--output", required=True)
    ap.add_argument("--corpus", default=str(DATA / "corpus-qnli.txt"))
    ap.add_argument("--min-tokens", type=int, default=150)
    ap.add_argument("--max-tokens", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit", type=int, default=None, help="stop after this many passages")
    args = ap.parse_args(argv)

    from embedrt.errors import EmbedrtError
    from embedrt.manifest import read_manifest
    from embedrt.runtime.session import load_tokenizer

    try:
        manifest = read_manifest(args.export_dir)
        tok = load_tokenizer(manifest)
        lines = Path(args.corpus).read_text(encoding="utf-8").splitlines()
        passages = make_passages(
            lines,
            lambda text: len(tok.encode_full([text])[0]),
            args.min_tokens,
            args.max_tokens,
            args.seed,
            args.limit,
        )
    except (EmbedrtError, OSError, ValueError) as e:
        print(f"make_passages: {e}", file=sys.stderr)
        return 2
    if not passages:
        print("make_passages: no passage fits; check the corpus and the token bounds", file=sys.stderr)
        return 2
    Path(args.output).write_text("".join(p + "\n" for p in passages), encoding="utf-8")
    lengths = np.array([len(r) for r in tok.encode_full(passages)])
    limit = manifest.max_seq_length
    p = np.percentile(lengths, [0, 10, 50, 90, 100])
    print(
        f"wrote {len(passages)} passages to {args.output}: tokens min {p[0]:.0f}, p10 {p[1]:.0f}, "
        f"median {p[2]:.0f}, p90 {p[3]:.0f}, max {p[4]:.0f}, mean {lengths.mean():.1f}"
    )
    over = int((lengths > limit).sum())
    print(
        f"max_seq_length {limit}: {over} of {len(passages)} passages ({100 * over / len(passages):.0f}%) are "
        f"truncated; {int(np.minimum(lengths, limit).sum())} of {int(lengths.sum())} tokens are embedded"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
