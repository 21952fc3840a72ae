"""The study's consistency diagnosis on sweeps of ours, through the real sweep command: α does not depend on γ
under correct speculative sampling, so a correct sweep flags no cell, and a drafter that never conditions on its
own earlier drafts (tests/broken_drafter.py, the bug behind Hayashizaki et al. 2024's table 1) is flagged at every
γ above one. Output stays lossless either way: only the diagnosis can tell them apart."""

from __future__ import annotations

import pandas as pd
from transformers import AutoTokenizer

from specsweep.models import families
from specsweep.study import aggregate, cells, tables
from tests.helpers import perturbed, sweep, tiny_model


def test_a_drafter_not_conditioned_on_its_drafts_is_flagged_and_a_correct_one_is_not(micro_env, tmp_path):
    # A random peaked target and a near copy of it as draft (α about 0.7): the micro family's own models agree on
    # nearly every token, so they could not show a fall in α.
    tokenizer = AutoTokenizer.from_pretrained(families.built_family("micro") / "target")
    target = tiny_model(seed=0, vocab=len(tokenizer))
    for name, model in {"target": target, "draft": perturbed(target, scale=0.05, seed=1)}.items():
        model.save_pretrained(tmp_path / name)
        tokenizer.save_pretrained(tmp_path / name)
    done = sweep(tmp_path / "sweep", micro_env, "model_family=pythia", "dataset=stdlib_heldout",
                 f"model_family.target={tmp_path / 'target'}", f"+model_family.drafts.near={tmp_path / 'draft'}",
                 "draft=near", "gamma=1,3", "method.name=speculative,unconditioned",
                 "method.module=tests.broken_drafter", "dataset.num_samples=8", "bench.max_new_tokens=64")
    assert done.returncode == 0, done.stderr[-3000:]
    table = pd.read_csv(tmp_path / "sweep" / aggregate.RESULTS_CSV)
    grids = {labels["method"]: tables.grid(frame) for labels, frame in cells.groups(table)}
    assert set(grids) == {"speculative", "unconditioned"}
    assert all((grid["exact_match"] == "1.000").all() for grid in grids.values())  # lossless, both
    assert not grids["speculative"]["flag"].str.contains("α").any(), grids["speculative"]["flag"].tolist()
    broken = grids["unconditioned"].set_index("γ")["flag"]
    assert "α" not in broken[1] and "drafts not conditioned on earlier drafts" in broken[3], broken.tolist()
    assert "not conditioned on earlier drafts" in (tmp_path / "sweep" / aggregate.STUDY_MD).read_text()
