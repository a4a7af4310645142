"""Three kinds of client against a running ``embedrt serve``: the official ``openai`` client, LangChain's
``OpenAIEmbeddings`` and plain HTTP in TEI's shapes (``/embed``, ``/rerank``). Each one's vectors are checked
against the server's own ``/v1/embeddings`` float answer (and against ``Encoder.encode`` when embedrt and the
export are at hand).

    embedrt serve minilm.embedrt --port 8000 --accept-any-model &      # LangChain sends its own model name
    embedrt serve reranker.embedrt --port 8001 &                        # optional: a cross-encoder export
    pip install openai langchain-openai                                 # the clients, anywhere
    python examples/serve_clients.py --url http://127.0.0.1:8000 --rerank-url http://127.0.0.1:8001

Only the standard library is needed for the plain-HTTP part; the openai and LangChain parts are skipped (and
say so) when those packages are missing.
"""

from __future__ import annotations

import argparse
import json
import urllib.error
import urllib.request

TEXTS = ["A man is playing a guitar.", "The new movie is awesome.", "A woman watches TV."]


def http(url: str, body: dict | None = None) -> tuple[int, object]:
    """POST ``body`` as JSON (or GET when None); (status, parsed JSON)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def max_diff(a: list[list[float]], b: list[list[float]]) -> float:
    return max(abs(x - y) for ra, rb in zip(a, b, strict=True) for x, y in zip(ra, rb, strict=True))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", default="http://127.0.0.1:8000", help="an embedding server")
    p.add_argument("--rerank-url", default=None, help="a cross-encoder server (optional)")
    p.add_argument(
        "--export", default=None, help="the export the server serves, to compare with Encoder.encode"
    )
    args = p.parse_args()

    status, health = http(f"{args.url}/health")
    print(f"server: {status} {health['model']} ({health['task']}, dim {health.get('dim')})")
    _, ref = http(f"{args.url}/v1/embeddings", {"input": TEXTS, "encoding_format": "float"})
    reference = [d["embedding"] for d in ref["data"]]
    print(f"plain HTTP POST /v1/embeddings: {len(reference)} x {len(reference[0])}, usage {ref['usage']}")
    if args.export:
        try:
            from embedrt import Encoder

            enc = Encoder(args.export, device="cpu")
            print(f"  vs Encoder.encode: max abs diff {max_diff(reference, enc.encode(TEXTS).tolist()):.1e}")
        except ImportError:
            print("  (embedrt not installed here: no Encoder.encode comparison)")

    try:
        import openai

        client = openai.OpenAI(base_url=f"{args.url}/v1", api_key="unused", max_retries=0)
        res = client.embeddings.create(model=health["model"], input=TEXTS)  # NOTE: asks for base64 itself
        got = [d.embedding for d in res.data]
        print(
            f"openai {openai.__version__} embeddings.create: {len(got)} x {len(got[0])}, "
            f"max abs diff {max_diff(got, reference):.1e}, usage {res.usage.prompt_tokens} tokens"
        )
        try:
            client.embeddings.create(model=health["model"], input=[1, 2, 3])
        except openai.BadRequestError as e:
            print(f"  token arrays -> {type(e).__name__} {e.status_code}: {e.body['message']}")
    except ImportError:
        print("openai: not installed, skipped (pip install openai)")

    try:
        import langchain_openai
        from langchain_openai import OpenAIEmbeddings

        # NOTE: check_embedding_ctx_length=False sends the texts as strings; by default LangChain tokenizes
        # them with tiktoken (which downloads its vocabulary) and sends OpenAI token ids, which no other model
        # reads.
        # It sends its own default model name: the server runs with --accept-any-model.
        emb = OpenAIEmbeddings(base_url=f"{args.url}/v1", api_key="unused", check_embedding_ctx_length=False)
        docs = emb.embed_documents(TEXTS)
        query = emb.embed_query(TEXTS[0])
        print(
            f"langchain-openai {getattr(langchain_openai, '__version__', '')}"
            f" OpenAIEmbeddings(model={emb.model!r}): embed_documents {len(docs)} x {len(docs[0])}, "
            f"max abs diff {max_diff(docs, reference):.1e}; embed_query max abs diff "
            f"{max_diff([query], reference[:1]):.1e}"
        )
    except ImportError:
        print("langchain-openai: not installed, skipped (pip install langchain-openai)")

    status, tei = http(f"{args.url}/embed", {"inputs": TEXTS, "normalize": True})
    print(
        f"TEI-style POST /embed: {status}, {len(tei)} x {len(tei[0])}, "
        f"max abs diff {max_diff(tei, reference):.1e}"
        " (normalize: true; this model's vectors are unit length already)"
    )
    status, err = http(f"{args.url}/embed", {"inputs": []})
    print(f"  bad request -> {status} {err['error']['message']!r}")

    if args.rerank_url:
        q = "Who plays the guitar?"
        status, ranked = http(f"{args.rerank_url}/rerank", {"query": q, "texts": TEXTS, "return_text": True})
        print(
            f"TEI-style POST /rerank: {status}, best first: "
            + ", ".join(f"{r['index']} ({r['score']:.4f})" for r in ranked)
        )
        status, cohere = http(f"{args.rerank_url}/v1/rerank", {"query": q, "documents": TEXTS, "top_n": 2})
        print(
            f"Cohere-style POST /v1/rerank: {status}, top 2: "
            + ", ".join(f"{r['index']} ({r['relevance_score']:.4f})" for r in cohere["results"])
        )
        status, err = http(f"{args.url}/rerank", {"query": q, "texts": TEXTS})
        print(f"  /rerank on the embedding server -> {status} {err['error']['message'][:90]!r}...")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
