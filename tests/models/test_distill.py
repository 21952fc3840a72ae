"""Drafts distilled for a target (`specsweep.models.distill`): their shapes in the target's architecture, their start
from the target's embeddings, the losses, resuming after a kill, and lossless decoding with a distilled draft."""

from __future__ import annotations

import math

import pytest
import torch
import transformers

from specsweep.decoding import Sampling, autoregressive, speculative
from specsweep.errors import ConfigError
from specsweep.models import distill
from specsweep.models.distill import Shape, Training
from tests.decoding.helpers import reference
from tests.helpers import shape as stand_in_config

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tokens(target) -> torch.Tensor:
    """Text the tiny target writes itself, for drafts to learn it from."""
    out = autoregressive(target, torch.tensor([[1]]), max_new_tokens=700, instrumented=False,
                         sampling=Sampling(temperature=1.0), generator=torch.Generator().manual_seed(0))
    return out.tokens


@pytest.fixture(scope="module")
def expected(target, prompts) -> list[list[int]]:
    return [reference(target, prompt) for prompt in prompts]


def test_shapes_and_sizes_parse_and_bad_ones_get_one_sentence():
    assert distill.parse_shape("4x128") == Shape(4, 128)
    assert distill.parse_size("250K") == 250_000 and distill.parse_size("1.5M") == 1_500_000
    for bad in ("4x", "x128", "0x64", "four"):
        with pytest.raises(ConfigError, match=r"--shapes entry .* is invalid; it must be LAYERSxWIDTH"):
            distill.parse_shape(bad)
    for bad in ("-1K", "1Q", ""):
        with pytest.raises(ConfigError, match=r"--sizes entry .* is invalid"):
            distill.parse_size(bad)


@pytest.mark.parametrize("kind", ["GPTNeoXConfig", "LlamaConfig", "GPT2Config", "Qwen3Config"])
def test_a_draft_is_the_targets_architecture_at_another_shape(kind):
    config = stand_in_config(kind, layers=3, vocab=120, eos=0)
    for wanted in (Shape(1, 16), Shape(2, 48), Shape(1, 8)):
        drafted = distill.draft_config(config, wanted)
        model = transformers.AutoModelForCausalLM.from_config(drafted)
        assert type(model).__name__ == transformers.AutoModelForCausalLM.from_config(config).__class__.__name__
        assert (drafted.num_hidden_layers, drafted.hidden_size) == (wanted.layers, wanted.hidden)
        assert drafted.hidden_size % drafted.num_attention_heads == 0
        model(input_ids=torch.tensor([[1, 2, 3]]))  # it runs
    assert config.num_hidden_layers == 3  # the target's config is untouched


def test_a_size_buys_width_first_then_layers():
    config = stand_in_config("LlamaConfig", layers=4, vocab=120, eos=0)
    full = distill.count_parameters(config)
    small = distill.shape_for_size(config, 6_000)
    assert small.layers == 1 and small.hidden <= config.hidden_size
    big = distill.shape_for_size(config, full * 0.8)
    assert big.layers > 1 and big.hidden == config.hidden_size
    got = distill.count_parameters(distill.draft_config(config, big))
    assert abs(math.log(got / (full * 0.8))) < math.log(1.5)


def test_drafts_start_from_the_targets_embeddings(target):
    same = distill.new_draft(target, Shape(1, target.config.hidden_size))
    assert torch.equal(same.get_input_embeddings().weight, target.get_input_embeddings().weight)
    assert torch.equal(same.get_output_embeddings().weight, target.get_output_embeddings().weight)
    narrow = distill.new_draft(target, Shape(1, 16)).get_input_embeddings().weight
    full = target.get_input_embeddings().weight
    # the top principal directions: the narrow embedding keeps their Gram matrix, which a random start does not
    _, s, _ = torch.linalg.svd(full, full_matrices=False)
    assert torch.allclose(torch.linalg.svdvals(narrow), s[:16], rtol=1e-4)
    wide = distill.new_draft(target, Shape(1, 64), init="target")  # wider than the target: a random start
    assert wide.get_input_embeddings().weight.shape[1] == 64
    random = distill.new_draft(target, Shape(1, 32), init="random")
    assert not torch.equal(random.get_input_embeddings().weight, full)


def test_the_divergences_are_what_they_say():
    generator = torch.Generator().manual_seed(0)
    log_p = torch.log_softmax(torch.randn(2, 3, 11, generator=generator), -1)
    log_q = torch.log_softmax(torch.randn(2, 3, 11, generator=generator), -1)
    for loss in ("fkl", "tvd", "rkl"):
        assert distill.divergence(loss, log_p, log_p).abs() < 1e-6
    kl = torch.nn.functional.kl_div(log_q, log_p, log_target=True, reduction="none").sum(-1).mean()
    assert torch.allclose(distill.divergence("fkl", log_p, log_q), kl)
    reverse = torch.nn.functional.kl_div(log_p, log_q, log_target=True, reduction="none").sum(-1).mean()
    assert torch.allclose(distill.divergence("rkl", log_p, log_q), reverse)
    tv = 0.5 * (log_p.exp() - log_q.exp()).abs().sum(-1).mean()
    assert torch.allclose(distill.divergence("tvd", log_p, log_q), tv)
    assert 0 < tv < 1


@pytest.mark.parametrize("loss", ["fkl", "tvd", "nll"])
def test_training_brings_the_draft_toward_the_target(target, tokens, loss):
    draft = distill.new_draft(target, Shape(1, 16))
    training = Training(loss=loss, steps=30, batch_size=8, seq_len=24, lr=1e-2)
    before = distill.heldout({"d": draft}, target, tokens[-200:], seq_len=24)["d"]
    distill.train(target, {"d": draft}, tokens[:-200], training, progress=False)
    after = distill.heldout({"d": draft}, target, tokens[-200:], seq_len=24)["d"]
    assert after["heldout_perplexity"] < before["heldout_perplexity"]
    assert after["agreement"] > before["agreement"]


@pytest.mark.parametrize("policy", ["target", "draft"])
def test_generated_text_is_the_batchs_length(target, tokens, policy):
    drafts = {"d": distill.new_draft(target, Shape(1, 16))}
    distill.train(target, drafts, tokens, Training(policy=policy, steps=2, batch_size=2, seq_len=16), progress=False)
    batch = distill.window_batch(tokens, 2, 16, seed=0, step=0)
    assert distill.generated(target, batch, seed=1).shape == batch.shape
    assert torch.equal(distill.generated(target, batch, seed=1)[:, :4], batch[:, :4])  # it continues the text


class Killed(Exception):
    pass


def test_a_killed_run_resumes_to_the_same_weights(target, tokens, tmp_path, monkeypatch):
    training = Training(steps=6, batch_size=4, seq_len=16, checkpoint_every=2)
    straight = {"d": distill.new_draft(target, Shape(1, 16))}
    distill.train(target, straight, tokens, training, progress=False)

    checkpoint = tmp_path / "state.pt"
    killed = {"d": distill.new_draft(target, Shape(1, 16))}
    calls = {"n": 0}
    real = distill.step_draft

    def dies_at_step_five(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:
            raise Killed
        return real(*args, **kwargs)

    monkeypatch.setattr(distill, "step_draft", dies_at_step_five)
    with pytest.raises(Killed):
        distill.train(target, killed, tokens, training, checkpoint, progress=False)
    assert torch.load(checkpoint, weights_only=False)["step"] == 4
    monkeypatch.setattr(distill, "step_draft", real)
    resumed = {"d": distill.new_draft(target, Shape(1, 16))}  # a fresh process: fresh weights, then the state
    distill.train(target, resumed, tokens, training, checkpoint, progress=False)
    assert not checkpoint.exists()
    for mine, theirs in zip(resumed["d"].parameters(), straight["d"].parameters(), strict=True):
        assert torch.equal(mine, theirs)


@pytest.mark.parametrize("use_cache", [True, False])
def test_a_distilled_draft_is_exact(target, tokens, prompts, expected, use_cache):
    draft = distill.new_draft(target, Shape(1, 16))
    distill.train(target, {"d": draft}, tokens, Training(steps=20, batch_size=8, seq_len=24, lr=1e-2),
                  progress=False)
    accepted = rejections = 0
    for gamma in range(1, 8):
        for prompt, want in zip(prompts, expected, strict=True):
            out = speculative(target, draft, prompt, gamma=gamma, max_new_tokens=len(want), use_cache=use_cache)
            assert out.tokens.tolist() == want
            accepted, rejections = accepted + out.stats.accepted, rejections + out.stats.rejections
    assert accepted > 0 and rejections > 0
