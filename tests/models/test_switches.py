"""The optimisation switches: each changes what it claims on the loaded model, greedy speculative decoding stays
lossless under each, and a job records what was applied (the combinations a device cannot run are refused by the cell
checks, tested in tests/app/test_cell.py)."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch

from specsweep.app import cell
from specsweep.decoding import autoregressive, speculative
from specsweep.errors import ConfigError
from specsweep.models import families, int8, switches
from tests.helpers import compose_config, perturbed, tiny_model

MAX_NEW = 12
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> dict[str, str]:
    """A tiny target and a near draft saved to disk, so they load through from_pretrained like any family."""
    root = tmp_path_factory.mktemp("models")
    target = tiny_model(seed=0)
    paths = {}
    for role, model in {"target": target, "draft": perturbed(target, scale=0.5, seed=1)}.items():
        model.save_pretrained(root / role)
        paths[role] = str(root / role)
    return paths


def load(path: str, **changes) -> torch.nn.Module:
    return families.load_model(path, None, False, "cpu", switches.Setting(**changes))


def settings(*overrides: str) -> dict[str, switches.Setting]:
    return switches.settings(cell.typed(compose_config(list(overrides), Path("out"))).optimization)


@pytest.mark.parametrize("asked,loaded", [("eager", "eager"), ("sdpa", "sdpa"), ("bettertransformer", "sdpa")])
def test_attn_is_the_implementation_the_model_reports(saved, asked, loaded):
    setting = settings(f"optimization.attn={asked}")["target"]
    model = families.load_model(saved["target"], None, False, "cpu", setting)
    assert model.config._attn_implementation == loaded and switches.applied(model)["attn"] == loaded


def test_dtype_is_the_dtype_of_the_weights(saved):
    model = load(saved["target"], dtype="bfloat16")
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    assert switches.applied(model)["dtype"] == "bfloat16"


def test_int8_replaces_every_linear_layer(saved):
    plain, quantized = load(saved["target"]), load(saved["target"], quantization="int8-dynamic")
    linears = sum(type(m) is torch.nn.Linear for m in plain.modules())
    assert linears > 0 and not any(type(m) is torch.nn.Linear for m in quantized.modules())
    assert sum(isinstance(m, int8.PerTokenInt8Linear) for m in quantized.modules()) == linears
    assert switches.applied(quantized)["quantized_modules"] == ["PerTokenInt8Linear"]
    assert switches.applied(plain)["quantized_modules"] == [] and not switches.applied(plain)["compiled"]
    assert switches.num_parameters(quantized) == plain.num_parameters()  # packed weights still count


def test_int8_quantises_gpt2s_conv1d_layers_too():
    """GPT-2's attention and MLP are transformers' Conv1D (a Linear with weight [in, out]), not nn.Linear."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=96, n_embd=32, n_layer=2, n_head=4, n_positions=64)).eval()
    ids = torch.randint(0, 96, (1, 10))
    with torch.no_grad():
        expected = model(ids).logits
        int8.quantize_int8_dynamic(model)
        got = model(ids).logits
    assert int8.float_linears(model) == []
    assert sum(isinstance(m, int8.PerTokenInt8Linear) for m in model.modules()) == 2 * 4 + 1  # + LM head
    assert torch.allclose(got, expected, atol=0.05 * expected.abs().max().item())


def test_compile_compiles_the_forward(saved):
    model = load(saved["target"], compile=True, compile_backend="eager")
    assert switches.applied(model)["compiled"]


def test_a_switch_that_did_nothing_is_an_error(saved):
    eager = load(saved["target"], attn="eager")
    with pytest.raises(RuntimeError, match=r"attn=eager \(asked for sdpa\)"):
        switches.verify(eager, switches.Setting(attn="sdpa"))
    with pytest.raises(RuntimeError, match=r"quantization=int8-dynamic"):
        switches.verify(load(saved["target"]), switches.Setting(quantization="int8-dynamic"))


def test_the_kv_cache_switch_decides_whether_a_cache_object_exists(target, near_draft, prompts):
    on = speculative(target, near_draft, prompts[0], gamma=3, max_new_tokens=MAX_NEW, use_cache=True)
    off = speculative(target, near_draft, prompts[0], gamma=3, max_new_tokens=MAX_NEW, use_cache=False)
    assert on.settings["cache"] == {"target": "DynamicCache", "draft": "DynamicCache"}
    assert off.settings["cache"] == {"target": None, "draft": None}
    assert autoregressive(target, prompts[0], max_new_tokens=MAX_NEW, use_cache=False).settings["cache"] == {
        "target": None}


def test_the_draft_can_differ_from_the_target():
    roles = settings("optimization.quantization=int8-dynamic", "+optimization.draft.quantization=none")
    assert roles["target"].quantization == "int8-dynamic" and roles["draft"].quantization == "none"
    assert roles["draft"].attn == roles["target"].attn == "auto"


@pytest.mark.parametrize("changes", [
    {"attn": "eager"}, {"attn": "sdpa"}, {"dtype": "bfloat16"}, {"quantization": "int8-dynamic"},
    {"compile": True, "compile_backend": "eager"},  # inductor takes minutes to compile on CPU; eager traces
], ids=lambda s: ",".join(f"{k}={v}" for k, v in s.items()))
@pytest.mark.parametrize("use_cache", [True, False])
def test_greedy_speculative_equals_autoregressive_under_each_switch(saved, prompts, changes, use_cache):
    """The reference is the optimised target's own autoregressive output: speculative decoding must not change
    what the (quantised, bfloat16, ...) target says, only how fast."""
    target, draft = load(saved["target"], **changes), load(saved["draft"], **changes)
    accepted = rejections = 0
    for prompt in prompts[:6]:
        expected = autoregressive(target, prompt, max_new_tokens=MAX_NEW, use_cache=use_cache).tokens.tolist()
        for gamma in (1, 4):
            out = speculative(target, draft, prompt, gamma=gamma, max_new_tokens=MAX_NEW, use_cache=use_cache)
            assert out.tokens.tolist() == expected
            accepted, rejections = accepted + out.stats.accepted, rejections + out.stats.rejections
    assert accepted > 0 and rejections > 0


def test_per_token_int8_is_batch_invariant_where_torchs_per_tensor_scale_is_not():
    """Why PerTokenInt8Linear exists: with one activation scale per forward, a row's output depends on the
    other rows, so verifying γ+1 tokens at once disagrees with decoding them one at a time."""
    torch.manual_seed(0)
    linear = torch.nn.Linear(64, 48)
    x = torch.randn(8, 64)
    x[5] *= 20  # one loud token changes torch's per-tensor scale for every other row

    def rows_alone_equal_batch(layer: torch.nn.Module) -> bool:
        with torch.no_grad():
            return torch.equal(torch.cat([layer(row[None]) for row in x]), layer(x))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        per_tensor = torch.ao.quantization.quantize_dynamic(torch.nn.Sequential(linear), {torch.nn.Linear},
                                                            dtype=torch.qint8)[0]
    assert not rows_alone_equal_batch(per_tensor)
    per_token = int8.PerTokenInt8Linear(linear.weight, linear.bias)
    assert rows_alone_equal_batch(per_token)
    with torch.no_grad():  # and it still computes the layer
        assert torch.allclose(per_token(x), linear(x), rtol=0.05, atol=0.05 * linear(x).abs().max().item())


@pytest.fixture(scope="module")
def bloom(tmp_path_factory) -> str:
    """A tiny BLOOM, an architecture transformers runs only with eager attention."""
    from transformers import BloomConfig, BloomForCausalLM

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("bloom")
    BloomForCausalLM(BloomConfig(vocab_size=96, hidden_size=32, n_layer=2, n_head=4)).save_pretrained(path)
    return str(path)


def test_auto_attention_is_sdpa_where_the_architecture_has_it_else_eager(saved, bloom):
    assert switches.applied(load(saved["target"]))["attn"] == "sdpa"  # GPT-NeoX
    assert switches.applied(load(bloom))["attn"] == "eager"
    assert switches.applied(load(bloom, attn="eager"))["attn"] == "eager"


def test_sdpa_on_an_architecture_without_it_is_one_sentence_before_loading(bloom):
    with pytest.raises(ConfigError) as error:
        load(bloom, attn="sdpa")
    message = str(error.value)
    assert "\n" not in message and "optimization.attn=sdpa" in message and "BloomForCausalLM" in message
    assert "optimization.attn=auto or eager" in message


def test_auto_dtype_is_float32_off_cuda(saved):
    assert switches.applied(load(saved["target"]))["dtype"] == "float32"
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(saved["target"])
    config.dtype = "bfloat16"  # a checkpoint saved in half precision still runs float32 on a CPU
    assert switches.auto_dtype(config, CPU) == "float32"


@pytest.mark.cuda
def test_auto_dtype_on_cuda_is_the_checkpoints_half_precision(saved):
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(saved["target"])
    cuda = torch.device("cuda")
    fallback = "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    config.dtype = "float16"
    assert switches.auto_dtype(config, cuda) == "float16"
    config.dtype = "float32"
    assert switches.auto_dtype(config, cuda) == fallback
    model = families.load_model(saved["target"], None, False, "cuda", switches.Setting())
    assert switches.applied(model)["dtype"] == fallback


def test_a_static_cache_compiles_a_few_fixed_shapes_whatever_the_prompts(saved, prompts):
    """cache=static with compile: every verification is padded to γ + 1 and the draft drafts each round as one fused
    graph, so the fixed-shape graphs are that round, the draft's one-token step (a one-token prompt's first round),
    the verification and the autoregressive step (the prefill runs eagerly on a CPU). A handful, however many prompts
    of whatever lengths follow; the output stays the target's, and a draft that is the target accepts every
    token."""
    from torch._dynamo.utils import counters

    from specsweep.decoding import runner

    plain = load(saved["target"]), load(saved["draft"])
    target, draft = (load(saved[role], compile=True, compile_backend="eager", fixed_shapes=True)
                     for role in ("target", "draft"))
    torch._dynamo.reset()
    counters.clear()
    graphs = []
    longest_first = sorted(prompts[:8], key=lambda p: p.shape[1], reverse=True)  # as a job warms up: one cache size
    for _ in range(2):  # the second pass meets no shape the first did not
        for prompt in longest_first:  # 8 prompt lengths between 1 and 23
            expected = autoregressive(plain[0], prompt, max_new_tokens=MAX_NEW).tokens.tolist()
            out = speculative(target, draft, prompt, gamma=3, max_new_tokens=MAX_NEW, cache="static")
            assert out.tokens.tolist() == expected
            assert autoregressive(target, prompt, max_new_tokens=MAX_NEW, cache="static").tokens.tolist() == expected
        graphs.append(counters["stats"]["unique_graphs"])
    assert graphs[0] == graphs[1] <= 4, graphs
    assert runner.draft_round in runner._COMPILED[draft]  # the rounds were drafted by the fused graph, not step by step
    same = speculative(target, target, prompts[1], gamma=3, max_new_tokens=MAX_NEW, cache="static")
    assert same.stats.rejections == 0 and same.stats.accepted == same.stats.drafted > 0
