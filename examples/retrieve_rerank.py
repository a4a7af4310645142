"""Retrieve and rerank: semantic search over a corpus with a bi-encoder, then a cross-encoder reranks the
top 100 hits of each query (the SBERT retrieve & re-rank pipeline). Runtime only: numpy, onnxruntime,
tokenizers.

    export-model all-MiniLM-L6-v2 -o minilm.embedrt
    export-model cross-encoder/ms-marco-MiniLM-L-6-v2 -o reranker.embedrt   # hub id, or a local directory
    python examples/retrieve_rerank.py minilm.embedrt reranker.embedrt \\
        --corpus ../shared/data/corpus-qnli.txt --limit 4000 --query "Who wrote the theory of relativity?"
"""

from __future__ import annotations

import argparse
import time

from embedrt import CrossEncoder, Encoder, rerank_hits, semantic_search


def retrieve_and_rerank(
    encoder: Encoder,
    reranker: CrossEncoder,
    corpus: list[str],
    queries: list[str],
    retrieve_k: int = 100,
    top_k: int = 5,
) -> list[list[dict]]:
    """Rerank each query's ``retrieve_k`` bi-encoder hits with the cross-encoder; keep ``top_k``."""
    corpus_emb = encoder.encode(corpus, batch_size=64)  # once, offline in a real system (the index)
    hits = semantic_search(encoder.encode(queries), corpus_emb, top_k=retrieve_k)
    return [
        rerank_hits(reranker, q, qhits, corpus, top_k=top_k) for q, qhits in zip(queries, hits, strict=True)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bi_encoder", help="embedding export directory (export-model MODEL)")
    parser.add_argument("cross_encoder", help="cross-encoder export directory (export-model --cross-encoder)")
    parser.add_argument("--corpus", required=True, help="UTF-8 text file, one document per line")
    parser.add_argument("--limit", type=int, default=None, help="first N corpus lines")
    parser.add_argument("--query", action="append", required=True, help="query (repeatable)")
    parser.add_argument("--retrieve-k", type=int, default=100, help="hits reranked per query (default 100)")
    parser.add_argument("--top-k", type=int, default=5, help="results shown per query (default 5)")
    args = parser.parse_args()

    with open(args.corpus, encoding="utf-8") as f:
        corpus = [line.strip() for line in f if line.strip()][: args.limit]
    encoder = Encoder(args.bi_encoder)
    reranker = CrossEncoder(args.cross_encoder)
    t0 = time.perf_counter()
    results = retrieve_and_rerank(encoder, reranker, corpus, args.query, args.retrieve_k, args.top_k)
    print(f"{len(corpus)} documents, {len(args.query)} queries, {time.perf_counter() - t0:.1f} s")
    for query, hits in zip(args.query, results, strict=True):
        print(f"\nQuery: {query}")
        for h in hits:
            via = f"bi-encoder {h['retrieval_score']:.4f}, rank {h['retrieval_rank'] + 1}"
            print(f"  {h['score']:.4f}  ({via})  {corpus[h['corpus_id']][:100]}")


if __name__ == "__main__":
    main()
