"""The bench report's format, from a synthetic report (two runners, two repetitions, made-up timings): the
summary, the pair-by-pair ratios and the markdown of both task specs. The expected markdown is what the
report printed before the two benches shared one orchestrator, so a change to the format shows here."""

from __future__ import annotations

import pytest

from embedrt.bench import orchestrate
from embedrt.bench.orchestrate import BenchConfig, spec_for, to_markdown

AGREEMENT = {
    "embedrt-fp32": {"max_abs_diff": 1e-7, "mean_cosine": 1.0, "min_cosine": 0.99999},
    "st-torch": {"max_abs_diff": 0.0, "mean_cosine": 1.0, "min_cosine": 1.0},
}


def runs(task):
    unit, count = ("sentences", "n_texts") if task == "embedding" else ("pairs", "n_pairs")
    out = []
    for rep in range(2):
        for label, runner, base in (("embedrt-fp32", "embedrt", 400.0), ("st-torch", "st-torch", 100.0)):
            r = {
                "runner": runner,
                "label": label,
                "rep": rep,
                "ok": True,
                "provider": "CPUExecutionProvider",
                "version": "1.0",
                "cold_start_s": 0.5 + rep + (3 if runner != "embedrt" else 0),
                "peak_rss_mib": 300.0 + 100 * rep + (900 if runner != "embedrt" else 0),
                "throughput": {
                    str(bs): {count: 6, "seconds": 1.0, f"{unit}_per_s": base * (1 + rep) * bs / 4}
                    for bs in (1, 4)
                },
                "latency_ms": {
                    "p50": 2.0 + rep + (8 if runner != "embedrt" else 0),
                    "p99": 9.0 + rep,
                    "n": 5,
                },
            }
            if task == "embedding" and runner == "embedrt":
                r["graph"] = "native: on: model.packed.onnx"
            out.append(r)
    return out


def report(task):
    cfg = {
        "target": "x",
        "corpus": "/data/pairs.tsv",
        "limit": 6,
        "batch_sizes": [1, 4],
        "headline_batch_size": 4,
        "repeats": 2,
        "sweep_limit": 1000,
        "model_dir": "/models/tiny",
        "real_tokens": 60,
        "mean_tokens": 10.0,
        "corpus_gflop": 0.5,
        "max_seq_length": 64,
    }
    if task == "embedding":
        cfg["n_texts"] = 6
        roof = {
            "shape": [8, 8, 8],
            "provider": "CPUExecutionProvider",
            "reps": [
                {"rep": 0, "fp32_gflops": 100.0, "int8_gflops": 400.0},
                {"rep": 1, "fp32_gflops": 200.0, "int8_gflops": 800.0},
            ],
            "fp32_gflops": 150.0,
            "int8_gflops": 600.0,
        }
    else:
        cfg["n_pairs"] = 6
        cfg["task"] = "cross-encoder"
        roof = {
            "shape": [8, 8, 8],
            "provider": "CPUExecutionProvider",
            "fp32_gflops": 100.0,
            "int8_gflops": 400.0,
        }
    return {
        "schema": "s",
        "created": "2000-01-01T00:00:00+00:00",
        "command": "embedrt bench",
        "machine": {"cpu": "CPU", "cores": 2, "isa": "avx2"},
        "config": cfg,
        "versions": {},
        "roofline": roof,
        "runs": runs(task),
        "skipped": [{"runner": "fastembed", "reason": "not installed: fastembed"}],
    }


EXPECTED = {
    "embedding": (
        "Machine: CPU, 2 cores (avx2); 2000-01-01T00:00:00+00:00. Corpus: 6 texts, 60 rea"
        "l tokens (10.0/text), batch 4, median of 2 alternating repetitions. Roofline: on"
        "nxruntime MatMul 150 GFLOP/s fp32, MatMulInteger 600 GOP/s int8.\n"
        "\n"
        "| runner | sent/s | tokens/s | vs st-torch | vs embedrt-fp32 | p50 ms | p99 ms |"
        " cold start s | peak RSS MiB | max abs diff | mean cos | min cos | GFLOP/s | roo"
        "fline |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
        "| embedrt-fp32 | 600 | 6000 | 4.00x | – | 2.50 | 9.50 | 1.00 | 350 | 1.0e-07 | 1"
        ".00000 | 0.99999 | 50 | 33% fp32 |\n"
        "| st-torch | 150 | 1500 | – | 0.25x | 10.50 | 9.50 | 4.00 | 1250 | 0.0e+00 | 1.0"
        "0000 | 1.00000 | 12 | 8% fp32 |\n"
        "\n"
        "Batch-size sweep, sentences/s (batch 4 on all texts; others on the first 6):\n"
        "\n"
        "| runner | bs 1 | bs 4 |\n"
        "|---|---|---|\n"
        "| embedrt-fp32 | 150 | 600 |\n"
        "| st-torch | 38 | 150 |\n"
        "\n"
        "Graph each embedrt runner ran: embedrt-fp32: native: on: model.packed.onnx.\n"
        "\n"
        "Skipped fastembed: not installed: fastembed\n"
    ),
    "cross-encoder": (
        "Machine: CPU, 2 cores (avx2); 2000-01-01T00:00:00+00:00. Cross-encoder tiny: 6 p"
        "airs from pairs.tsv, 60 real tokens (10.0/pair), batch 4, median of 2 alternatin"
        "g repetitions.\n"
        "\n"
        "| runner | pairs/s | tokens/s | vs st-torch | vs embedrt-fp32 | p50 ms | p99 ms "
        "| cold start s | peak RSS MiB | max abs diff vs st-torch | GFLOP/s | roofline |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|\n"
        "| embedrt-fp32 | 600.0 | 6000 | 4.00x | – | 2.50 | 9.50 | 1.00 | 350 | 1.0e-07 |"
        " 50 | 50% |\n"
        "| st-torch | 150.0 | 1500 | – | 0.25x | 10.50 | 9.50 | 4.00 | 1250 | 0.0e+00 | 1"
        "2 | 12% |\n"
        "\n"
        "Batch-size sweep, pairs/s (batch 4 on all pairs; others on the first 6):\n"
        "\n"
        "| runner | bs 1 | bs 4 |\n"
        "|---|---|---|\n"
        "| embedrt-fp32 | 150.0 | 600.0 |\n"
        "| st-torch | 37.5 | 150.0 |\n"
        "\n"
        "Skipped fastembed: not installed: fastembed\n"
    ),
}


@pytest.mark.parametrize("task", ["embedding", "cross-encoder"])
def test_summary_ratios_and_markdown(task, tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("a\n")
    cfg = BenchConfig(
        target="x", corpus=str(corpus), limit=6, batch_sizes=[1, 4], headline_batch_size=4, repeats=2
    )
    r = report(task)
    spec = spec_for(r["config"].get("task"))
    labels = ["embedrt-fp32", "st-torch"]
    agreement = {
        k: {m: v[m] for m, *_ in [(c[1],) for c in spec.agreement_columns]} for k, v in AGREEMENT.items()
    }
    r["summary"] = orchestrate._summarize(spec, r["runs"], labels, cfg, r, agreement)
    r["ratios"] = orchestrate._ratios(spec, r["runs"], labels, cfg)
    unit = "sentences" if task == "embedding" else "pairs"
    # medians of the two repetitions, pair by pair: 400/100 and 800/200 at batch 4
    assert r["summary"]["embedrt-fp32"][f"{unit}_per_s"] == 600.0
    assert r["ratios"]["embedrt-fp32"]["st-torch"]["throughput"] == 4.0
    assert ("cold_start" in r["ratios"]["st-torch"]["embedrt-fp32"]) == (task == "embedding")
    assert to_markdown(r) == EXPECTED[task]
