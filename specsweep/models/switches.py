"""The optimisation switches of `optimization.*`: how a model is loaded (attention implementation, dtype,
quantisation) and prepared (torch.compile), checked before anything loads, and read back from the loaded model.

Target and draft get the same switches unless `optimization.draft` overrides some of them for the draft.
"""

from __future__ import annotations

import importlib.util
import warnings
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import torch
from transformers import PretrainedConfig, PreTrainedModel

from specsweep.errors import ConfigError
from specsweep.models.compile import compile_forward
from specsweep.models.int8 import PerTokenInt8Linear, float_linears, quantize_int8_dynamic

if TYPE_CHECKING:
    from specsweep.schema import OptimizationConfig

AUTO = "auto"  # attn: SDPA where the architecture has it, else eager; dtype: see `auto_dtype`
ATTN = (AUTO, "eager", "sdpa")
# optimum's BetterTransformer for decoder models became transformers' SDPA attention (optimum deprecated it).
ATTN_ALIASES = {"bettertransformer": "sdpa"}
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
DTYPE_CHOICES = (AUTO, *DTYPES)
QUANTIZATIONS = ("none", "int8-dynamic", "bnb-8bit", "bnb-4bit")
PER_MODEL = ("attn", "dtype", "quantization", "compile", "compile_backend")  # what optimization.draft may override


@dataclass(frozen=True)
class Setting:
    """How one model is loaded and prepared. Hashable: loaded models are cached per (location, Setting)."""

    attn: str = AUTO
    dtype: str = AUTO
    quantization: str = "none"
    compile: bool = False
    compile_backend: str = "inductor"
    fixed_shapes: bool = False  # compiled for a static cache: one graph per input shape, not a dynamic one


def canonicalize(opt: OptimizationConfig) -> None:
    """Aliases replaced by what they name, in the config itself: `attn=bettertransformer` and `attn=sdpa` are
    one cell (one identity, one setting label), not two."""
    opt.attn = ATTN_ALIASES.get(opt.attn, opt.attn)
    if "attn" in opt.draft:
        opt.draft["attn"] = ATTN_ALIASES.get(opt.draft["attn"], opt.draft["attn"])


def settings(opt: OptimizationConfig) -> dict[str, Setting]:
    """Role ("target", "draft") -> its Setting. Call `canonicalize` first."""
    unknown = sorted(set(opt.draft) - set(PER_MODEL))
    if unknown:
        raise ConfigError(f"optimization.draft overrides {', '.join(unknown)}, which it cannot; it may override "
                          f"{', '.join(PER_MODEL)}.")
    # A static cache gives every decode step the same shapes, so a compiled forward can be specialised to them.
    static = opt.cache == "static"
    target = Setting(**{key: getattr(opt, key) for key in PER_MODEL}, fixed_shapes=opt.compile and static)
    draft = replace(target, **opt.draft)
    return {"target": target, "draft": replace(draft, fixed_shapes=draft.compile and static)}


def check(roles: dict[str, Setting], device: torch.device) -> None:
    """One sentence per bad value; a dtype the device runs slowly is allowed, with a warning. `roles` holds the
    draft only when one will load; a draft that differs nowhere from the target is not checked twice."""
    check_setting(roles["target"], "optimization", device)
    if "draft" in roles and roles["draft"] != roles["target"]:
        check_setting(roles["draft"], "optimization.draft", device)


def check_setting(setting: Setting, param: str, device: torch.device) -> None:
    if setting.attn not in ATTN:
        raise ConfigError(f"{param}.attn={setting.attn!r} is invalid; it must be one of {', '.join(ATTN)} "
                          f"(or bettertransformer, an alias of sdpa).")
    if setting.dtype not in DTYPE_CHOICES:
        raise ConfigError(f"{param}.dtype={setting.dtype!r} is invalid; it must be one of "
                          f"{', '.join(DTYPE_CHOICES)}.")
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
        if setting.quantization == "bnb-8bit" and setting.dtype == "float32":  # auto is half precision on CUDA
            warnings.warn(f"{param}.quantization=bnb-8bit with dtype=float32: bitsandbytes' int8 matmul casts "
                          f"activations to float16, so this cell runs float16 activations; dtype=float16 says so.",
                          stacklevel=2)
    if setting.quantization == "int8-dynamic":
        if device.type != "cpu":
            instead = "; use quantization=bnb-8bit on CUDA" if device.type == "cuda" else ""
            raise ConfigError(f"{param}.quantization=int8-dynamic runs on CPU only (torch's dynamic int8 kernels "
                              f"are fbgemm's) but this job runs on {device.type}{instead}.")
        if setting.dtype not in ("float32", AUTO):  # auto is float32 off CUDA
            raise ConfigError(f"{param}.quantization=int8-dynamic needs dtype=float32 (torch's dynamic int8 Linear "
                              f"takes float32 activations), not dtype={setting.dtype}.")
    if setting.compile and setting.compile_backend not in torch._dynamo.list_backends(exclude_tags=()):
        raise ConfigError(f"{param}.compile_backend={setting.compile_backend!r} is not a torch.compile backend; "
                          f"this torch has {', '.join(torch._dynamo.list_backends())}.")
    if device.type == "cpu" and setting.dtype == "float16":
        warnings.warn(f"{param}.dtype=float16 on CPU: most CPUs have no fast float16 matmul, so this cell measures "
                      f"an emulated dtype; bfloat16 or float32 is what a CPU user would run.", stacklevel=2)


def resolve(setting: Setting, config: PretrainedConfig, device: torch.device, name: str) -> Setting:
    """`setting` with "auto" replaced by what this checkpoint gets on `device`, read from its config before any
    weights load; an explicit attn=sdpa on an architecture without SDPA fails here, with one sentence."""
    model_class = architecture(config)
    sdpa = getattr(model_class, "_supports_sdpa", None)  # None: a remote-code class transformers does not know
    if setting.attn == "sdpa" and sdpa is False:
        raise ConfigError(f"optimization.attn=sdpa is invalid for {name} ({model_class.__name__}), which transformers "
                          f"cannot run with SDPA attention; use optimization.attn=auto or eager.")
    attn = ("sdpa" if sdpa else "eager" if sdpa is False else AUTO) if setting.attn == AUTO else setting.attn
    dtype = auto_dtype(config, device) if setting.dtype == AUTO else setting.dtype
    return replace(setting, attn=attn, dtype=dtype)


def architecture(config: PretrainedConfig) -> type | None:
    """The causal-LM class transformers would build for `config`, without building it."""
    from transformers import AutoModelForCausalLM

    try:
        return AutoModelForCausalLM._model_mapping[type(config)]
    except KeyError:
        return None


def auto_dtype(config: PretrainedConfig, device: torch.device) -> str:
    """float32 off CUDA. On CUDA the checkpoint's own half precision (its config's dtype), else bfloat16 where the
    GPU has it, else float16: what the published studies ran (fp16 on an RTX 3090 and a T4), at half the memory."""
    if device.type != "cuda":
        return "float32"
    saved = str(getattr(config, "dtype", None) or getattr(config, "torch_dtype", None) or "").removeprefix("torch.")
    bfloat16 = torch.cuda.is_bf16_supported()
    if saved == "float16" or (saved == "bfloat16" and bfloat16):
        return saved
    return "bfloat16" if bfloat16 else "float16"


def load_kwargs(setting: Setting, device: torch.device) -> dict[str, Any]:
    """from_pretrained keyword arguments of a resolved setting: attention, dtype and bitsandbytes are applied
    while loading; attn "auto" (a class transformers does not know) lets transformers choose."""
    kwargs: dict[str, Any] = {"dtype": DTYPES[setting.dtype]}
    if setting.attn != AUTO:
        kwargs["attn_implementation"] = setting.attn
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
        compile_forward(model, setting.compile_backend, setting.fixed_shapes)
    verify(model, setting)
    return model


def verify(model: torch.nn.Module, setting: Setting) -> None:
    """A requested switch that silently did nothing is a bug, not a measurement: compare what the model
    reports with what was asked for."""
    got = applied(model)
    wanted: dict[str, Any] = {"compiled": setting.compile} | ({"attn": setting.attn} if setting.attn != AUTO else {})
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


def num_parameters(model: PreTrainedModel) -> int:
    """Parameters as trained: int8 layers keep their weights packed, outside model.parameters()."""
    packed = sum(m.in_features * m.out_features for m in model.modules() if isinstance(m, PerTokenInt8Linear))
    return model.num_parameters() + packed


def weight_bytes(model: PreTrainedModel) -> int:
    """Bytes of the weights and buffers as loaded (transformers' footprint), and int8 layers' packed weights."""
    packed = sum(m.in_features * m.out_features for m in model.modules() if isinstance(m, PerTokenInt8Linear))
    return model.get_memory_footprint() + packed


def applied(model: torch.nn.Module) -> dict[str, Any]:
    """What the loaded model reports, not what was asked for: a switch that did nothing shows here."""
    kinds = sorted({type(m).__name__ for m in model.modules()
                    if isinstance(m, PerTokenInt8Linear) or type(m).__module__.startswith("bitsandbytes")})
    return {"attn": model.config._attn_implementation, "dtype": str(model.dtype).removeprefix("torch."),
            "quantized_modules": kinds, "compiled": getattr(model, "_compiled_call_impl", None) is not None}




def device(name: str, param: str = "device") -> torch.device:
    """The device `name` ("auto": cuda where there is one, else cpu), checked to exist here. `param` names the
    setting in the sentence a bad name gets (device in a config, --device on a command line)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        chosen = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"{param}={name!r} is invalid; it must be auto, cpu, cuda or cuda:N.") from None
    if chosen.type == "cuda" and not (torch.cuda.is_available() and (chosen.index or 0) < torch.cuda.device_count()):
        raise ConfigError(f"{param}={name} is not available on this machine ({torch.cuda.device_count()} CUDA "
                          f"devices); use {param}=cpu or {param}=auto.")
    return chosen
