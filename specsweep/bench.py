"""Benchmark the decoding engine: autoregressive, speculative and assisted on the same models, gamma and prompts.

    python -m specsweep.bench [--target DIR --draft DIR] [--gamma 3] [--prompts 8] [--max-new-tokens 64]

Methods run interleaved per prompt, in rotating order, after a warm-up, so machine noise hits all alike.
Prints tokens/s with its spread over repeats, the paired ratios, and our engine's measured speedup beside
Leviathan et al.'s prediction S(alpha, gamma, c) from its own measured alpha and c.

Without --target/--draft it builds a synthetic pair in memory (see `synthetic_pair`): a random GPT-NeoX
target and, as draft, its first layer. That measures the engine, not a study.
"""

from __future__ import annotations

import argparse
import copy
import statistics
from collections.abc import Callable

import torch
from transformers import AutoModelForCausalLM, GPTNeoXConfig, GPTNeoXForCausalLM

from specsweep import theory
from specsweep.decoding import DecodeStats, Generation, assisted, autoregressive, derive, speculative


def synthetic_pair(layers: int = 16, hidden: int = 128, vocab: int = 512, draft_layers: int = 1,
                   residual_scale: float = 0.1, seed: int = 0) -> tuple[GPTNeoXForCausalLM, GPTNeoXForCausalLM]:
    """A random target whose layers past the first few only nudge the residual stream, and as draft those
    first layers alone: shaped like a small trained pair (alpha about 0.5, c about 0.1), built in a second."""
    torch.manual_seed(seed)
    config = GPTNeoXConfig(vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers,
                           num_attention_heads=hidden // 64, intermediate_size=4 * hidden,
                           max_position_embeddings=1024)
    target = GPTNeoXForCausalLM(config).eval()
    with torch.no_grad():
        for layer in target.gpt_neox.layers[draft_layers:]:
            layer.attention.dense.weight.mul_(residual_scale)
            layer.mlp.dense_4h_to_h.weight.mul_(residual_scale)
    draft = copy.deepcopy(target)
    draft.gpt_neox.layers = draft.gpt_neox.layers[:draft_layers]
    draft.config.num_hidden_layers = draft_layers
    return target, draft


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} [{min(values):.3f}, {max(values):.3f}]"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", help="a saved Hugging Face model directory or hub id")
    parser.add_argument("--draft", help="the draft model, same tokenizer as the target")
    # The default synthetic pair sits where the seed study's small drafts do: c about 0.1.
    parser.add_argument("--layers", type=int, default=16, help="synthetic target depth")
    parser.add_argument("--hidden", type=int, default=128, help="synthetic width")
    parser.add_argument("--vocab", type=int, default=512, help="synthetic vocabulary")
    parser.add_argument("--gamma", type=int, default=3)
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--prompt-length", type=int, default=64)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if bool(args.target) != bool(args.draft):
        parser.error("--target and --draft go together")
    if args.target:
        target = AutoModelForCausalLM.from_pretrained(args.target).eval()
        draft = AutoModelForCausalLM.from_pretrained(args.draft).eval()
    else:
        target, draft = synthetic_pair(layers=args.layers, hidden=args.hidden, vocab=args.vocab)
    target, draft = target.to(args.device), draft.to(args.device)
    assistant = copy.deepcopy(draft)  # transformers' assisted generation keeps its own hooks and config

    generator = torch.Generator().manual_seed(0)
    vocab = min(target.config.vocab_size, draft.config.vocab_size)
    prompts = [torch.randint(0, vocab, (1, args.prompt_length), generator=generator).to(args.device)
               for _ in range(args.prompts)]
    methods: dict[str, Callable[[torch.Tensor], Generation]] = {
        "autoregressive": lambda p: autoregressive(target, p, max_new_tokens=args.max_new_tokens),
        "speculative": lambda p: speculative(target, draft, p, gamma=args.gamma, max_new_tokens=args.max_new_tokens),
        "assisted": lambda p: assisted(target, assistant, p, gamma=args.gamma, max_new_tokens=args.max_new_tokens),
    }
    for run in methods.values():  # warm-up: allocator, kernels, lazy imports
        run(prompts[0])

    names = list(methods)
    per_repeat = {name: [] for name in names}  # tokens/s of each repeat, over all prompts
    totals = {name: DecodeStats() for name in names}
    identical = True
    for repeat in range(args.repeats):
        stats = {name: DecodeStats() for name in names}
        for i, prompt in enumerate(prompts):
            order = names[(i + repeat) % 3:] + names[: (i + repeat) % 3]  # rotate who goes first
            outputs = {name: methods[name](prompt) for name in order}
            identical &= len({tuple(out.tokens.tolist()) for out in outputs.values()}) == 1
            for name, out in outputs.items():
                stats[name] = stats[name] + out.stats
        for name in names:
            per_repeat[name].append(stats[name].new_tokens / stats[name].seconds)
            totals[name] = totals[name] + stats[name]

    print(f"target {sum(p.numel() for p in target.parameters()) / 1e6:.1f}M params, "
          f"draft {sum(p.numel() for p in draft.parameters()) / 1e6:.1f}M, gamma={args.gamma}, "
          f"{args.prompts} prompts x {args.max_new_tokens} new tokens, {args.repeats} repeats, "
          f"device {args.device}, {torch.get_num_threads()} threads")
    print("tokens/s, median [min, max] over repeats:")
    for name in names:
        print(f"  {name:15s} {spread(per_repeat[name])}")
    ratio = {
        other: [s / o for s, o in zip(per_repeat["speculative"], per_repeat[other], strict=True)]
        for other in ("autoregressive", "assisted")
    }
    print(f"speculative / assisted        {spread(ratio['assisted'])}")
    print(f"speculative / autoregressive  {spread(ratio['autoregressive'])}")
    results = {"greedy_outputs_identical": identical, "gamma": args.gamma}
    for name in ("speculative", "assisted"):
        m = derive(totals[name], totals["autoregressive"])
        measured = statistics.median(
            [s / a for s, a in zip(per_repeat[name], per_repeat["autoregressive"], strict=True)]
        )
        s = theory.predicted_speedup(m["alpha"], args.gamma, m["c"])
        # Leviathan et al. price a verification at one target step; on this machine it costs verify_cost steps.
        corrected = theory.expected_tokens(m["alpha"], args.gamma) / (args.gamma * m["c"] + m["verify_cost"])
        print(f"{name}: alpha={m['alpha']:.3f} acceptance_rate={m['acceptance_rate']:.3f} "
              f"tokens_per_round={m['tokens_per_round']:.2f} c={m['c']:.3f} verify_cost={m['verify_cost']:.2f} "
              f"overhead_fraction={m['overhead_fraction']:.3f}")
        print(f"  measured speedup {measured:.3f} vs predicted S {s:.3f}: ratio {measured / s:.3f} "
              f"(S with the measured verify cost: {corrected:.3f})")
        results[name] = m | {"speedup": measured, "speedup_over_predicted": measured / s}
    print(f"greedy outputs identical across methods: {identical}")
    results["tokens_per_s"] = per_repeat
    return results


if __name__ == "__main__":
    main()
