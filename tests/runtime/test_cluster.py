"""community_detection against sentence-transformers' util.community_detection."""

from __future__ import annotations

import numpy as np
import pytest

from embedrt import InputError, community_detection


def _st(emb, **kw):
    from sentence_transformers.util import community_detection as st_cd

    return st_cd(emb, **kw)


def _blobs(n_centres=12, per=(3, 30), dim=24, noise=0.35, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_centres, dim))
    rows = [c + noise * rng.normal(size=(int(rng.integers(*per)), dim)) for c in centres]
    emb = np.vstack(rows + [rng.normal(size=(40, dim))]).astype(np.float32)
    return emb[rng.permutation(len(emb))]


@pytest.mark.parametrize(
    "threshold,min_size,batch_size", [(0.75, 10, 1024), (0.6, 5, 7), (0.9, 3, 64), (0.5, 1, 100)]
)
def test_same_clusters_as_sentence_transformers_on_blobs(threshold, min_size, batch_size):
    emb = _blobs()
    ours = community_detection(emb, threshold=threshold, min_community_size=min_size, batch_size=batch_size)
    ref = _st(emb, threshold=threshold, min_community_size=min_size, batch_size=batch_size)
    assert ours == ref
    assert len(ours) > 1


def test_edge_cases():
    assert community_detection(np.zeros((0, 4), np.float32)) == []
    emb = _blobs()[:5]
    assert community_detection(emb, min_community_size=10) == _st(emb, min_community_size=10) == []
    for bad in (0, -2, 1.5, True):
        with pytest.raises(InputError, match="min_community_size"):
            community_detection(emb, min_community_size=bad)
    with pytest.raises(InputError, match="batch_size"):
        community_detection(emb, batch_size=0)
    for bad in (float("nan"), float("inf"), "0.5", None):
        with pytest.raises(InputError, match="threshold must be a finite number"):
            community_detection(emb, threshold=bad)
    with pytest.raises(InputError):
        community_detection(np.zeros((2, 2, 2)))


@pytest.mark.slow
def test_same_clusters_on_2000_corpus_sentences(minilm_export, shared_data):
    from embedrt import Encoder

    corpus = (shared_data / "corpus-qnli.txt").read_text(encoding="utf-8")
    lines = [t for t in corpus.splitlines() if t.strip()]
    emb = Encoder(minilm_export, device="cpu").encode(lines[:2000])
    for threshold, min_size in ((0.75, 10), (0.6, 5), (0.5, 3)):
        ours = community_detection(emb, threshold=threshold, min_community_size=min_size)
        ref = _st(emb, threshold=threshold, min_community_size=min_size)
        assert ours == ref, (threshold, min_size)
    assert ours and sum(map(len, ours)) > 100


def test_cluster_cli(tiny_bert, tmp_path, capsys):
    import json

    from embedrt.cli import main

    _, export_dir = tiny_bert
    corpus = tmp_path / "corpus.txt"
    lines = ["hello world"] * 4 + ["the model reads every token"] * 3 + ["", "pizza"]
    corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "clusters.json"
    assert (
        main(
            [
                "cluster",
                str(export_dir),
                "--corpus",
                str(corpus),
                "--min-size",
                "3",
                "--threshold",
                "0.99",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    clusters = json.loads(out.read_text())
    assert [c["size"] for c in clusters] == [4, 3]
    assert sorted(clusters[0]["ids"]) == [0, 1, 2, 3] and sorted(clusters[1]["ids"]) == [4, 5, 6]
    assert "cluster 1: 4 sentences" in capsys.readouterr().out
    assert main(["cluster", str(export_dir), "--corpus", str(tmp_path / "missing.txt")]) == 2
