"""The benchmark command runs end to end and reports what the README says."""

from __future__ import annotations

import torch

from specsweep.cli.bench import main, synthetic_pair
from specsweep.decoding import autoregressive, derive, speculative
from specsweep.models import embedded


def test_bench_compares_the_three_methods(capsys):
    results = main(["--layers", "3", "--hidden", "64", "--vocab", "128", "--prompts", "2",
                    "--prompt-length", "8", "--max-new-tokens", "12", "--repeats", "2"])
    assert results["greedy_outputs_identical"] is True
    for name in ("speculative", "assisted"):
        assert len(results[name]["speedup"]) == 2 and results[name]["c"] > 0 and results[name]["alpha"] is not None
    assert results["autoregressive"]["speedup"] == [1.0, 1.0]
    assert len(results["speculative_over_assisted"]) == 2
    printed = capsys.readouterr().out
    assert "speculative / assisted" in printed and "S_v" in printed


def test_bench_adds_the_fast_path_and_its_ratios(capsys):
    results = main(["--layers", "3", "--hidden", "64", "--vocab", "128", "--prompts", "2", "--prompt-length", "8",
                    "--max-new-tokens", "12", "--repeats", "1", "--fast", "--compile-backend", "eager"])
    assert results["greedy_outputs_identical"] is True  # the fast path says what the others say
    for name in ("speculative_fast_over_assisted", "autoregressive_fast_over_autoregressive",
                 "speculative_fast_over_autoregressive_fast"):
        assert len(results[name]) == 1
    assert "speculative fast / assisted" in capsys.readouterr().out


def test_bench_probes_a_family(tmp_path, capsys):
    family = embedded.build(embedded.MICRO, tmp_path)
    results = main(["--family", str(family), "--gammas", "1,2", "--prompts", "2", "--prompt-length", "16",
                    "--max-new-tokens", "8", "--repeats", "1"])
    rows = [name for name in results if name.startswith("speculative ")]
    assert len(rows) == 2 * (len(embedded.MICRO.drafts) + len(embedded.NGRAM_ORDERS))  # n-gram drafts too
    assert results["greedy_outputs_identical"] is True
    assert "gamma=2" in capsys.readouterr().out


def test_synthetic_draft_agrees_with_its_target_often():
    """The default pair must exercise acceptance, or the benchmark would only time rejections."""
    target, draft = synthetic_pair(layers=3, hidden=64, vocab=128)
    prompt = torch.arange(1, 17)[None]
    out = speculative(target, draft, prompt, gamma=3, max_new_tokens=48)
    assert out.tokens.tolist() == autoregressive(target, prompt, max_new_tokens=48).tokens.tolist()
    assert 0.3 < derive(out.stats)["alpha"] < 1
