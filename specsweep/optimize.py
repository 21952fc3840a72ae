"""The optimisation switches of `optimization.*`: how a model is loaded (attention implementation, dtype,
quantisation) and prepared (torch.compile), checked before anything loads, and read back from the loaded model.

Target and draft get the same switches unless `optimization.draft` overrides some of them for the draft.
"""

from __future__ import annotations

import importlib.util
import warnings
from dataclasses import dataclass
from typing import Any

import torch
from omegaconf import DictConfig
from transformers import PreTrainedModel
from transformers.pytorch_utils import Conv1D

from specsweep.errors import ConfigError

ATTN = ("eager", "sdpa")
# optimum's BetterTransformer for decoder models became transformers' SDPA attention (optimum deprecated it).
ATTN_ALIASES = {"bettertransformer": "sdpa"}
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
QUANTIZATIONS = ("none", "int8-dynamic", "bnb-8bit", "bnb-4bit")
PER_MODEL = ("attn", "dtype", "quantization", "compile", "compile_backend")  # what optimization.draft may override


@dataclass(frozen=True)
class Setting:
    """How one model is loaded and prepared. Hashable: loaded models are cached per (location, Setting)."""

    attn: str = "sdpa"
    dtype: str = "float32"
    quantization: str = "none"
    compile: bool = False
    compile_backend: str = "inductor"


def canonicalize(opt: DictConfig) -> None:
    """Aliases replaced by what they name, in the config itself: `attn=bettertransformer` and `attn=sdpa` are
    one cell (one identity, one setting label), not two."""
    for switches in (opt, opt.get("draft") or {}):
        if switches.get("attn") in ATTN_ALIASES:
            switches["attn"] = ATTN_ALIASES[switches["attn"]]


def settings(opt: DictConfig) -> dict[str, Setting]:
    """Role ("target", "draft") -> its Setting, aliases resolved."""
    shared = {key: opt[key] for key in PER_MODEL}
    roles = {"target": shared, "draft": shared | dict(opt.get("draft") or {})}
    return {role: Setting(**switches | {"attn": ATTN_ALIASES.get(switches["attn"], switches["attn"])})
            for role, switches in roles.items()}


def validate(opt: DictConfig, device: torch.device, method: DictConfig) -> None:
    """One sentence per bad value; a dtype the device runs slowly is allowed, with a warning."""
    unknown = sorted(set(opt.get("draft") or {}) - set(PER_MODEL))
    if unknown:
        raise ConfigError(f"optimization.draft overrides {', '.join(unknown)}, which it cannot; it may override "
                          f"{', '.join(PER_MODEL)}.")
    if method.needs_kv_cache and not opt.kv_cache:
        raise ConfigError(f"optimization.kv_cache=false is invalid for method {method.name}, which needs the KV "
                          f"cache; use method=speculative or autoregressive for a cell without it.")
    roles = settings(opt)
    check_setting(roles["target"], "optimization", device, method)
    # One sentence (or warning) per bad value, not one per model; and none for a draft the method never loads.
    if method.uses_draft and roles["draft"] != roles["target"]:
        check_setting(roles["draft"], "optimization.draft", device, method)


def check_setting(setting: Setting, param: str, device: torch.device, method: DictConfig) -> None:
    if setting.attn not in ATTN:
        raise ConfigError(f"{param}.attn={setting.attn!r} is invalid; it must be one of {', '.join(ATTN)} "
                          f"(or bettertransformer, an alias of sdpa).")
    if setting.dtype not in DTYPES:
        raise ConfigError(f"{param}.dtype={setting.dtype!r} is invalid; it must be one of {', '.join(DTYPES)}.")
    if setting.quantization not in QUANTIZATIONS:
        raise ConfigError(f"{param}.quantization={setting.quantization!r} is invalid; it must be one of "
                          f"{', '.join(QUANTIZATIONS)}.")
    if setting.quantization.startswith("bnb-"):
        if device.type != "cuda":
            raise ConfigError(f"{param}.quantization={setting.quantization} needs a CUDA device (bitsandbytes) but "
                              f"this job runs on {device.type}; use quantization=int8-dynamic on CPU.")
        missing = [name for name in ("bitsandbytes", "accelerate") if importlib.util.find_spec(name) is None]
        if missing:
            raise ConfigError(f"{param}.quantization={setting.quantization} needs the {' and '.join(missing)} "
                              f"package(s), not installed; pip install {' '.join(missing)}.")
        if setting.quantization == "bnb-8bit" and setting.dtype == "float32":
            warnings.warn(f"{param}.quantization=bnb-8bit with dtype=float32: bitsandbytes' int8 matmul casts "
                          f"activations to float16, so this cell runs float16 activations; dtype=float16 says so.",
                          stacklevel=2)
    if setting.quantization == "int8-dynamic":
        if device.type != "cpu":
            instead = "; use quantization=bnb-8bit on CUDA" if device.type == "cuda" else ""
            raise ConfigError(f"{param}.quantization=int8-dynamic runs on CPU only (torch's dynamic int8 kernels "
                              f"are fbgemm's) but this job runs on {device.type}{instead}.")
        if setting.dtype != "float32":
            raise ConfigError(f"{param}.quantization=int8-dynamic needs dtype=float32 (torch's dynamic int8 Linear "
                              f"takes float32 activations), not dtype={setting.dtype}.")
    if setting.compile and not method.compilable:
        raise ConfigError(f"{param}.compile=true is invalid for method {method.name}, which runs transformers' "
                          f"generate() with a candidate generator, where compiling the forwards is not valid; "
                          f"compile works with method=speculative or autoregressive.")
    if setting.compile and setting.compile_backend not in torch._dynamo.list_backends(exclude_tags=()):
        raise ConfigError(f"{param}.compile_backend={setting.compile_backend!r} is not a torch.compile backend; "
                          f"this torch has {', '.join(torch._dynamo.list_backends())}.")
    if device.type == "cpu" and setting.dtype == "float16":
        warnings.warn(f"{param}.dtype=float16 on CPU: most CPUs have no fast float16 matmul, so this cell measures "
                      f"an emulated dtype; bfloat16 or float32 is what a CPU user would run.", stacklevel=2)


def load_kwargs(setting: Setting, device: torch.device) -> dict[str, Any]:
    """from_pretrained keyword arguments: attention, dtype and bitsandbytes are applied while loading."""
    kwargs: dict[str, Any] = {"attn_implementation": setting.attn, "dtype": DTYPES[setting.dtype]}
    if setting.quantization.startswith("bnb-"):
        from transformers import BitsAndBytesConfig

        bits = {"bnb-8bit": {"load_in_8bit": True},
                "bnb-4bit": {"load_in_4bit": True, "bnb_4bit_compute_dtype": DTYPES[setting.dtype]}}
        kwargs["quantization_config"] = BitsAndBytesConfig(**bits[setting.quantization])
        kwargs["device_map"] = {"": device}  # bitsandbytes models are placed while loading; .to() is refused
    return kwargs


def prepare(model: torch.nn.Module, setting: Setting) -> torch.nn.Module:
    """What happens after loading: int8 dynamic quantisation, then torch.compile (compiles lazily, on first use)."""
    if setting.quantization == "int8-dynamic":
        quantize_int8_dynamic(model)
    if setting.compile:
        # Target and draft share transformers' forward code object, and each (model, input shape class, cache
        # state) is its own graph: the default limit of 8 would silently fall back to eager after a few.
        limit = "recompile_limit" if hasattr(torch._dynamo.config, "recompile_limit") else "cache_size_limit"
        setattr(torch._dynamo.config, limit, max(getattr(torch._dynamo.config, limit), 64))  # renamed in torch 2.6
        model.compile(backend=setting.compile_backend, dynamic=True)
    verify(model, setting)
    return model


def verify(model: torch.nn.Module, setting: Setting) -> None:
    """A requested switch that silently did nothing is a bug, not a measurement: compare what the model
    reports with what was asked for."""
    got = applied(model)
    wanted = {"attn": setting.attn, "compiled": setting.compile}
    if not setting.quantization.startswith("bnb-"):  # bitsandbytes keeps int8/uint8 weights: no single dtype
        wanted["dtype"] = setting.dtype
    wrong = [f"{key}={got[key]} (asked for {value})" for key, value in wanted.items() if got[key] != value]
    if (setting.quantization != "none") != bool(got["quantized_modules"]):
        wrong.append(f"quantized modules {got['quantized_modules']} (asked for quantization={setting.quantization})")
    left = float_linears(model) if setting.quantization == "int8-dynamic" else []
    if left:
        wrong.append(f"{len(left)} linear layers left in float (asked for quantization=int8-dynamic)")
    if wrong:
        raise RuntimeError(f"the loaded {type(model).__name__} reports {'; '.join(wrong)}.")


class PerTokenInt8Linear(torch.nn.Module):
    """torch's dynamic int8 Linear (fbgemm, int8 weights with a scale per output channel), fed activations
    quantised with a scale per token instead of one per tensor.

    Why: torch's per-tensor activation scale is computed over every position of a forward, so the logits of
    one position depend on the other tokens in the same forward, later ones included. A verification forward
    over gamma+1 tokens then disagrees with one-token-at-a-time decoding and speculative decoding stops being
    lossless. Per-token scales (torchao's and vLLM's int8 scheme) keep each position a function of its prefix.
    The trick: each row is divided by its absolute maximum, so all rows lie in [-1, 1], and two constant inputs
    +1 and -1 (with zero weights) pin the per-tensor range to exactly [-1, 1] whatever the batch holds.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None) -> None:  # weight: [out, in]
        super().__init__()
        self.out_features, self.in_features = weight.shape
        padded = torch.nn.Linear(self.in_features + 2, self.out_features, bias=False)
        with torch.no_grad():
            padded.weight.zero_()
            padded.weight[:, : self.in_features] = weight.detach().float()
        qconfig = torch.ao.quantization.per_channel_dynamic_qconfig
        with warnings.catch_warnings():  # torch.ao.quantization's deprecation notice points to torchao
            warnings.simplefilter("ignore", DeprecationWarning)
            self.quantized = torch.ao.quantization.quantize_dynamic(
                torch.nn.Sequential(padded), {torch.nn.Linear: qconfig}, dtype=torch.qint8)[0]
        self.bias = None if bias is None else torch.nn.Parameter(bias.detach().float(), requires_grad=False)
        self.register_buffer("pins", torch.tensor([1.0, -1.0]), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [..., in] -> [..., out]
        scale = x.abs().amax(dim=-1, keepdim=True).clamp(min=torch.finfo(x.dtype).tiny)  # [..., 1]
        y = self.quantized(torch.cat([x / scale, self.pins.expand(*x.shape[:-1], 2)], dim=-1)) * scale
        return y if self.bias is None else y + self.bias


def float_linears(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The model's unquantised linear layers: nn.Linear, and GPT-2's Conv1D (a Linear with weight [in, out])."""
    return [m for m in model.modules() if type(m) in (torch.nn.Linear, Conv1D)]


def quantize_int8_dynamic(model: torch.nn.Module) -> None:
    """Every linear layer of the model (attention, MLP, LM head) becomes a PerTokenInt8Linear, in place."""
    for module in list(model.modules()):
        for child_name, child in list(module.named_children()):
            if type(child) is torch.nn.Linear:
                setattr(module, child_name, PerTokenInt8Linear(child.weight, child.bias))
            elif type(child) is Conv1D:
                setattr(module, child_name, PerTokenInt8Linear(child.weight.t(), child.bias))


def num_parameters(model: PreTrainedModel) -> int:
    """Parameters as trained: int8 layers keep their weights packed, outside model.parameters()."""
    packed = sum(m.in_features * m.out_features for m in model.modules() if isinstance(m, PerTokenInt8Linear))
    return model.num_parameters() + packed


def applied(model: torch.nn.Module) -> dict[str, Any]:
    """What the loaded model reports, not what was asked for: a switch that did nothing shows here."""
    kinds = sorted({type(m).__name__ for m in model.modules()
                    if isinstance(m, PerTokenInt8Linear) or type(m).__module__.startswith("bitsandbytes")})
    return {"attn": model.config._attn_implementation, "dtype": str(model.dtype).removeprefix("torch."),
            "quantized_modules": kinds, "compiled": getattr(model, "_compiled_call_impl", None) is not None}


class Compilation:
    """Seconds torch.compile has spent compiling since this object was made. torch has no public counter, so
    this reads dynamo's own timing table (torch._dynamo.utils); 0 when nothing compiled."""

    def __init__(self) -> None:
        self.start = self.total()

    @staticmethod
    def total() -> float:
        from torch._dynamo import utils

        return sum(getattr(utils, "compilation_time_metrics", {}).get("_compile.compile_inner", []))

    def seconds(self) -> float:
        return self.total() - self.start
