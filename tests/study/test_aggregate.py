"""The tidy table of `aggregate.collect` from job directories made here, not by a sweep: an empty sweep, and the
cells a killed sweep never launched."""

from __future__ import annotations

import pandas as pd
from omegaconf import OmegaConf

from specsweep import record
from specsweep.study import aggregate, cells, document, plots, tables


def test_an_empty_sweep(tmp_path):
    empty = aggregate.collect(tmp_path)
    assert empty.empty and {"status", "draft", "gamma", "speedup"} <= set(empty.columns)
    assert "(no finished cells)" in document.markdown(empty) and plots.figures(empty) == []


def test_never_launched_cells_are_inferred_for_any_swept_axes(tmp_path):
    """A method x attention x draft sweep killed after two jobs: the cells it never launched are `missing` rows
    named by their overrides; autoregressive ignores the draft, so it misses once, not once per draft."""
    OmegaConf.save(OmegaConf.create({"hydra": {"sweeper": {"params": {}}, "overrides": {"task": [
        "method=autoregressive,speculative", "optimization.attn=eager,sdpa", "draft=1M,3M", "experiment=smoke"]}}}),
        tmp_path / "multirun.yaml")
    launched = [("speculative", "eager", "1M"), ("autoregressive", "sdpa", "1M")]
    for number, (method, attn, draft) in enumerate(launched):
        job_dir = tmp_path / f"{number}_method={method},optimization.attn={attn},draft={draft}"
        (job_dir / ".hydra").mkdir(parents=True)
        OmegaConf.save(OmegaConf.create([f"method={method}", f"optimization.attn={attn}", f"draft={draft}"]),
                       job_dir / ".hydra" / "overrides.yaml")
        drafting = method == "speculative"
        cell = {"method": method, "method.name": method, "draft": draft if drafting else None,
                "gamma": 3 if drafting else None, "model_family": "fam", "dataset": "data",
                "optimization.name": "default", "optimization.attn": attn,
                "setting": f"attn={attn}", "sampling.temperature": 0.0}
        record.write_json(job_dir / record.STATUS, {"status": "failed", "key": str(number), "cell": cell,
                                                    "error": "ValueError: boom"})
    rows = aggregate.collect(tmp_path)
    never = rows[rows["job"].str.startswith("(never launched)")].set_index("job")
    assert sorted(never.index) == [
        "(never launched) method=autoregressive,optimization.attn=eager,draft=1M",
        "(never launched) method=speculative,optimization.attn=eager,draft=3M",
        "(never launched) method=speculative,optimization.attn=sdpa,draft=1M",
        "(never launched) method=speculative,optimization.attn=sdpa,draft=3M"]
    autoregressive = never.loc["(never launched) method=autoregressive,optimization.attn=eager,draft=1M"]
    assert pd.isna(autoregressive["draft"]) and autoregressive["setting"] == "attn=eager"
    assert never.loc["(never launched) method=speculative,optimization.attn=sdpa,draft=3M", "setting"] == "attn=sdpa"
    assert (never["status"] == "missing").all() and (never["gamma"].dropna() == 3).all()
    grids = {(labels["method"], labels["setting"]): tables.grid(frame) for labels, frame in cells.groups(rows)}
    assert sorted(grids) == [("autoregressive", "attn=eager"), ("autoregressive", "attn=sdpa"),
                             ("speculative", "attn=eager"), ("speculative", "attn=sdpa")]
    assert list(grids["speculative", "attn=sdpa"]["status"]) == ["missing", "missing"]
