"""int8 dynamic quantisation with a scale per token, so that a verification forward over γ+1 tokens gives each
position the logits one-token decoding would: speculative decoding stays lossless on an int8 target."""

from __future__ import annotations

import warnings

import torch
from transformers.pytorch_utils import Conv1D


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
