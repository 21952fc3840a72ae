"""The study's draft-scale sections on small tidy tables: the fits recover a law the rows were made from, the border
is found where the fit and the costs put it, deep and wide drafts of equal size are paired, and distilled drafts
are set beside plain-trained drafts of the same shape."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from specsweep import theory
from specsweep.study import document, scale
from tests.study.rows import job, table

# shape, parameters, layers: 1x16 .. 1x128, and a deep 4x64 as large as the wide 1x80
LADDER = [("1x16", 134_000, 1), ("1x32", 275_000, 1), ("1x64", 574_000, 1), ("4x64", 724_000, 4),
          ("1x80", 733_000, 1), ("1x128", 1_247_000, 1)]


def law(params: int) -> float:
    return 0.3 + 0.1 * math.log10(params / 100_000)  # α rising log-linearly with size (Scylla's form)


def ladder_rows(loss: str, family: str, shift: float = 0.0, gammas=(1, 3, 5)) -> list[dict]:
    rows = []
    for shape, params, layers in LADDER:
        alpha = law(params) + shift
        c = 0.05 + params / 20_000_000 + 0.08 * (layers - 1)  # depth costs a draft latency
        for gamma in gammas:
            speedup = theory.predicted_speedup(alpha, gamma, c)
            name = f"{shape}-{loss}"
            accepted = round(1000 * alpha)
            rows.append(job(draft=name, gamma=gamma, speedup=speedup, model_family=family, alpha=alpha, c=c,
                            draft_params=params, draft_shape=shape, draft_layers=layers, draft_loss=loss,
                            draft_heldout_perplexity=40 - 60 * alpha, accepted=accepted,
                            rejections=1000 - accepted, verify_cost=1.0))
    return rows


@pytest.fixture
def study() -> pd.DataFrame:
    return table(ladder_rows("fkl", "ladder") + ladder_rows("nll", "ladder_plain", shift=-0.05))


def test_the_fits_recover_the_law_the_drafts_follow(study):
    found = scale.ladders(study)
    assert [ladder.heading for ladder in found] == ["ladder · distilled (forward KL)", "ladder_plain · plain "
                                                                                        "(next-token loss)"]
    distilled = found[0].drafts
    scylla, sdsl = scale.fits(distilled).values()
    assert scylla["b"] == pytest.approx(0.1, rel=1e-2) and scylla["r2"] == pytest.approx(1.0, abs=1e-4)
    assert sdsl["b"] == pytest.approx(-1 / 60, rel=1e-2) and scylla["n"] == len(LADDER)
    fitted = scale.fit_table(found)
    assert set(fitted["law"]) == set(scale.LAWS) and (fitted["R²"] == "1.000").all()


def test_the_border_is_where_the_fit_and_the_costs_put_it(study):
    distilled = scale.ladders(study)[0].drafts
    predicted = scale.predicted_optimum(distilled, next(iter(scale.LAWS)))
    # the rows' speedups are Leviathan's S from the same α and c: the prediction names the measured optimum
    measured = scale.measured_optimum(distilled)
    assert (predicted["draft"], predicted["gamma"]) == (measured["draft"], measured["gamma"])
    border = scale.border_table(scale.ladders(study))
    assert (border["ladder steps apart"] == 0).all()
    assert border.iloc[0]["target ÷ measured optimum"].endswith("×")


def test_a_fit_far_from_the_measurement_says_how_many_steps_apart():
    rows = ladder_rows("fkl", "ladder")
    for row in rows:  # the largest draft measured fastest, against the law its α follows
        if row["draft"].startswith("1x128"):
            row["speedup"] *= 3
    border = scale.border_table(scale.ladders(table(rows)))
    assert (border["ladder steps apart"] > 0).all()


def test_deep_and_wide_drafts_of_equal_size_are_paired(study):
    pairs = scale.depth_width_table(scale.ladders(study)[:1])
    assert pairs["shape"].tolist() == ["4x64", "1x80"] and pairs["kind"].tolist() == ["deep", "wide"]
    assert float(pairs.iloc[0]["c"]) > float(pairs.iloc[1]["c"])


def test_distilled_drafts_stand_beside_plain_ones_of_the_same_shape(study):
    trained = scale.training_table(scale.ladders(study))
    assert trained["shape"].tolist() == [shape for shape, _, _ in LADDER]
    gain = law(134_000) / (law(134_000) - 0.05) - 1
    assert trained.iloc[0]["α gain"] == f"{gain:+.1%}"


def test_the_sections_are_in_the_study_and_absent_without_a_ladder(study):
    text = document.markdown(study)
    for heading in ("Draft scale: α fitted", "The border in draft scale", "Deep against wide",
                    "Distilled against plain-trained"):
        assert heading in text
    two = table([job(draft="1M", gamma=3), job(draft="3M", gamma=3)])  # two drafts: nothing to fit
    assert scale.sections(two) == [] and "Draft scale" not in document.markdown(two)
