"""Every config of every group composes against the schema, and the schema catches typos and wrong types."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_module
from hydra.errors import ConfigCompositionException
from omegaconf.errors import ValidationError

from specsweep.schema import NOT_MEASURED
from tests.helpers import CONF, compose_config

GROUPS = sorted(p.name for p in CONF.iterdir() if p.is_dir() and p.name not in ("hydra", "__pycache__"))
OVERRIDES_ONLY = ("experiment", "debug")  # groups of override files, which name no node of their own


@pytest.mark.parametrize("group,choice", [(g, f.stem) for g in GROUPS for f in sorted((CONF / g).glob("*.yaml"))])
def test_every_config_composes(group, choice):
    cfg = compose_config([f"{group}={choice}"])
    if group not in OVERRIDES_ONLY:
        assert cfg[group].name == choice
    assert cfg.draft in cfg.model_family.drafts  # every family's default draft is one of its sizes


def test_a_family_brings_its_dataset_and_the_command_line_wins():
    assert compose_config(["model_family=japanese_gpt_neox_xlsum"]).dataset.name == "xlsum_ja"
    assert compose_config(["model_family=japanese_gpt_neox_xlsum", "dataset=humaneval"]).dataset.name == "humaneval"


def test_hub_families_use_the_seeds_exact_ids():
    cfg = compose_config(["model_family=japanese_gpt_neox_xlsum"])
    assert cfg.model_family.target == "u-hyszk/japanese-gpt-neox-409M-xlsum-sft"
    assert list(cfg.model_family.drafts) == ["6M", "13M", "29M", "47M", "72M", "115M", "165M", "247M"]
    assert all(v == f"u-hyszk/japanese-gpt-neox-{k}-xlsum-sft" for k, v in cfg.model_family.drafts.items())
    assert cfg.dataset.template == "タイトル: {title}\nテキスト: {text}\n要約: " and cfg.dataset.truncate.text == 256


class Vocab:  # a model's size depends on the tokenizer only through its length
    eos_token_id = 0

    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n


def test_embedded_size_names_match_the_recipe():
    """The YAML lists sizes statically (validated before any build); the recipe must produce exactly those."""
    from specsweep.models import embedded

    for family, recipe in [("embedded", embedded.Recipe()), ("embedded_micro", embedded.MICRO)]:
        names = [embedded.size_name(embedded.new_model(s, Vocab(recipe.vocab_size))) for s in recipe.drafts]
        assert list(compose_config([f"model_family={family}"]).model_family.drafts) == [*names, *embedded.NGRAM_ORDERS]


def test_ladder_size_names_match_their_recipes():
    from specsweep.models import distill, embedded

    for family, recipe in [("embedded_ladder", embedded.Recipe()), ("embedded_ladder_micro", embedded.MICRO)]:
        config = compose_config([f"model_family={family}"]).model_family
        target = embedded.new_model(recipe.target, Vocab(recipe.vocab_size)).config
        shapes = list(embedded.LADDERS[config.ladder].shapes)
        counts = [distill.count_parameters(distill.draft_config(target, shape)) for shape in shapes]
        assert list(config.drafts) == distill.names(counts, shapes)
    # the plain ladders are the same shapes under another loss: the same names
    for kd, plain in [("embedded_ladder", "embedded_ladder_plain"), ("embedded_ladder_micro",
                                                                     "embedded_ladder_micro_plain")]:
        ladders = [compose_config([f"model_family={name}"]).model_family for name in (kd, plain)]
        assert ladders[0].drafts == ladders[1].drafts
        assert embedded.LADDERS[ladders[0].ladder].shapes == embedded.LADDERS[ladders[1].ladder].shapes


@pytest.mark.parametrize("override", ["gamma=three", "bench.repeats=1.5", "sampling.temprature=1",
                                      "dataset.nmu_samples=3"])
def test_typos_and_wrong_types_fail_at_composition(override):
    with pytest.raises((ConfigCompositionException, ValidationError)):
        compose_config([override])


@pytest.mark.parametrize("group,experiment", [(g, f.stem) for g in OVERRIDES_ONLY
                                              for f in sorted((CONF / g).glob("*.yaml"))])
def test_every_experiment_pins_its_sweep_directory_so_running_it_again_resumes(group, experiment):
    with initialize_config_module(version_base="1.3", config_module="specsweep.conf"):
        cfg = compose("config", overrides=[f"{group}={experiment}"], return_hydra_config=True)
    assert cfg.hydra.sweep.dir == f"outputs/{experiment}"


def test_keys_that_are_not_measured_name_no_job_directory():
    with initialize_config_module(version_base="1.3", config_module="specsweep.conf"):
        cfg = compose("config", return_hydra_config=True)
    excluded = list(cfg.hydra.job.config.override_dirname.exclude_keys)
    assert excluded == [*NOT_MEASURED, *OVERRIDES_ONLY, "hydra.sweep.dir"]


def test_a_job_directory_name_is_one_short_component():
    from specsweep.schema import dirname

    assert dirname("dataset.path=/data/x.jsonl,gamma=3") == "dataset.path=_data_x.jsonl,gamma=3"
    long = dirname("model_family.target=/" + "a" * 300)
    assert len(long) == 160 and "/" not in long and long != dirname("model_family.target=/" + "a" * 299)
