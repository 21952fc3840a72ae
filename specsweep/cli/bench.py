"""Benchmark the decoding engine: methods on the same target and prompts, interleaved, with spread.

    specsweep-bench [--target DIR --draft DIR] [--gamma 3] [--prompts 8] [--max-new-tokens 64] [--fast]
    specsweep-bench --family DIR [--gammas 1,3,5]

The first form compares autoregressive, speculative and assisted decoding at one gamma; `--fast` adds both of ours
on the fast path (a static KV cache and forwards compiled for fixed shapes, `--compile-backend`, inductor by
default: minutes of compilation on a CPU, in the warm-up, which then runs every prompt). The second probes a
built family (`specsweep-build-family`): speculative decoding with every draft at every gamma,
on prompts cut from the held-out standard-library files.

Methods run interleaved per prompt, in a fresh random order, after a warm-up, so machine noise hits all alike.
Each row gives tokens/s and the paired speedup over autoregressive decoding (median [min, max] over
repeats), then alpha, c, the verification cost and Leviathan et al.'s prediction S(alpha, gamma, c), also
with the measured verification cost (S_v), which S prices at one target step.

Without --target/--draft/--family it builds a synthetic pair in memory (see `synthetic_pair`): a random
GPT-NeoX target and, as draft, its first layer. That measures the engine, not a study.
"""

from __future__ import annotations

import copy
import json
import random
import statistics
from collections.abc import Callable
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, GPTNeoXConfig, GPTNeoXForCausalLM

from specsweep import record, theory
from specsweep.cli.args import Parser, device
from specsweep.data.corpus import read_texts, stdlib_files
from specsweep.decoding import DecodeStats, Generation, assisted, autoregressive, derive, speculative
from specsweep.decoding.measure import interleave, warm_up
from specsweep.models import embedded, store
from specsweep.models.compile import compile_forward


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


def heldout_prompts(recipe: embedded.Recipe, tokenizer, count: int, length: int, seed: int = 0
                    ) -> list[torch.Tensor]:
    """Windows of `length` tokens from the family's held-out standard-library files, which it never saw."""
    texts = read_texts(stdlib_files("heldout", recipe.heldout_every, recipe.max_files))
    docs = [ids for ids in tokenizer(texts)["input_ids"] if len(ids) > 2 * length]
    rng = random.Random(seed)
    prompts = []
    for _ in range(count):
        doc = rng.choice(docs)
        start = rng.randrange(len(doc) - 2 * length)
        prompts.append(torch.tensor([doc[start : start + length]]))
    return prompts


def spread(values: list[float]) -> str:
    """Median [min, max] of per-repeat values."""
    return record.spread_text(statistics.median(values), min(values), max(values), unit="")


def measure(methods: dict[str, Callable[[torch.Tensor], Generation]], prompts: list[torch.Tensor], repeats: int,
            warm_every_prompt: bool = False) -> tuple[dict[str, list[float]], dict[str, DecodeStats], bool]:
    """Tokens/s of each method per repeat, their summed stats, and whether all outputs were identical.
    `warm_every_prompt`: compiled forwards meet their shapes on whichever prompt first needs them."""
    calls = {name: (lambda prompt, _, run=run: run(prompt)) for name, run in methods.items()}
    for prompt in prompts if warm_every_prompt else prompts[:1]:
        warm_up(calls, prompt, times=1)
    stats = {name: [DecodeStats() for _ in range(repeats)] for name in methods}  # per method, per repeat
    identical = True
    for repeat, _, outputs in interleave(calls, prompts, repeats):
        identical &= len({tuple(out.tokens.tolist()) for out in outputs.values()}) == 1
        for name, out in outputs.items():
            stats[name][repeat] = stats[name][repeat] + out.stats
    per_repeat = {name: [s.new_tokens / s.seconds for s in runs] for name, runs in stats.items()}
    totals = {name: sum(runs, DecodeStats()) for name, runs in stats.items()}
    return per_repeat, totals, identical


def report(per_repeat: dict[str, list[float]], totals: dict[str, DecodeStats], gammas: dict[str, int]) -> dict:
    """Print one row per method (speedup over today's autoregressive decoding); return the figures."""
    baseline = per_repeat["autoregressive"]
    results = {}
    print(f"{'method':28s} {'tokens/s':>22s} {'speedup':>22s}   alpha  acc.rate    c   verify  S     S_v")
    for name, tps in per_repeat.items():
        speedup = [t / b for t, b in zip(tps, baseline, strict=True)]
        # c and the verification cost are per one-token step of the same engine: the fast rows' of the fast path.
        same_engine = "autoregressive fast" if name.endswith(" fast") and "autoregressive fast" in totals \
            else "autoregressive"
        m = derive(totals[name], totals[same_engine])
        row = f"{name:28s} {spread(tps):>22s} {spread(speedup):>22s}"
        if name in gammas and m["alpha"] is not None:
            gamma = gammas[name]
            s_v = theory.predicted_speedup(m["alpha"], gamma, m["c"], m["verify_cost"] or 1.0)
            row += (f"   {m['alpha']:.2f}   {m['acceptance_rate']:.2f}   {m['c']:.3f}  {m['verify_cost'] or 0:.2f}"
                    f"  {m['predicted_speedup']:.2f}  {s_v:.2f}")
            m |= {"predicted_speedup_with_verify_cost": s_v}
        print(row)
        results[name] = m | {"tokens_per_s": tps, "speedup": speedup}
    return results


def main(argv: list[str] | None = None) -> dict:
    parser = Parser(prog="specsweep-bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", help="a saved Hugging Face model directory or hub id")
    parser.add_argument("--draft", help="the draft model, same tokenizer as the target")
    parser.add_argument("--family", type=Path, help="a built family directory: every draft at every --gammas")
    parser.add_argument("--gamma", type=int, default=3)
    parser.add_argument("--gammas", default="1,3,5", help="with --family")
    # The default synthetic pair sits where the small drafts of Hayashizaki et al. 2024 do: c about 0.1.
    parser.add_argument("--layers", type=int, default=16, help="synthetic target depth")
    parser.add_argument("--hidden", type=int, default=128, help="synthetic width")
    parser.add_argument("--vocab", type=int, default=512, help="synthetic vocabulary")
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--prompt-length", type=int, default=64)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--device", default="auto", help='"auto" (cuda when there is one, else cpu), cpu, cuda, cuda:1')
    parser.add_argument("--fast", action="store_true", help="also time ours with a static cache, compiled")
    parser.add_argument("--compile-backend", default="inductor", help="with --fast")
    args = parser.parse_args(argv)
    args.device = device(parser, "--device", args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    if bool(args.target) != bool(args.draft):
        parser.error("--target and --draft go together; give both, or neither for the synthetic pair.")
    new = args.max_new_tokens

    def load(path) -> torch.nn.Module:
        return AutoModelForCausalLM.from_pretrained(path).eval().to(args.device)

    if args.family:
        manifest = json.loads((args.family / store.MANIFEST).read_text())
        target = load(args.family / manifest["target"])
        prompts = heldout_prompts(embedded.Recipe.from_dict(manifest["recipe"]),
                                  AutoTokenizer.from_pretrained(args.family / manifest["target"]),
                                  args.prompts, args.prompt_length)
        methods = {"autoregressive": lambda p: autoregressive(target, p, max_new_tokens=new)}
        gammas = {}
        for size, path in manifest["drafts"].items():
            draft = load(args.family / path)
            for gamma in map(int, args.gammas.split(",")):
                name = f"speculative {size} gamma={gamma}"
                methods[name] = lambda p, d=draft, g=gamma: speculative(target, d, p, gamma=g, max_new_tokens=new)
                gammas[name] = gamma
        header = f"family {args.family.name}: target {manifest['target_size']}, drafts {', '.join(manifest['drafts'])}"
    else:
        if args.target:
            target, draft = load(args.target), load(args.draft)
        else:
            target, draft = (m.to(args.device) for m in synthetic_pair(args.layers, args.hidden, args.vocab))
        assistant = copy.deepcopy(draft)  # transformers' assisted generation keeps its own hooks and config
        generator = torch.Generator().manual_seed(0)
        vocab = min(target.config.vocab_size, draft.config.vocab_size)
        prompts = [torch.randint(0, vocab, (1, args.prompt_length), generator=generator)
                   for _ in range(args.prompts)]
        methods = {
            "autoregressive": lambda p: autoregressive(target, p, max_new_tokens=new),
            "speculative": lambda p: speculative(target, draft, p, gamma=args.gamma, max_new_tokens=new),
            "assisted": lambda p: assisted(target, assistant, p, gamma=args.gamma, max_new_tokens=new),
        }
        gammas = {"speculative": args.gamma, "assisted": args.gamma}
        if args.fast:  # copies compiled for fixed shapes, so the rows above keep the eager forwards
            fast_target, fast_draft = copy.deepcopy(target), copy.deepcopy(draft)
            for model in (fast_target, fast_draft):
                compile_forward(model, args.compile_backend, fixed_shapes=True)
            methods |= {
                "autoregressive fast": lambda p: autoregressive(fast_target, p, max_new_tokens=new, cache="static"),
                "speculative fast": lambda p: speculative(fast_target, fast_draft, p, gamma=args.gamma,
                                                          max_new_tokens=new, cache="static"),
            }
            gammas["speculative fast"] = args.gamma
        params = [sum(p.numel() for p in m.parameters()) / 1e6 for m in (target, draft)]
        header = f"target {params[0]:.1f}M params, draft {params[1]:.1f}M, gamma={args.gamma}"
    prompts = [p.to(args.device) for p in prompts]

    print(f"{header}; {len(prompts)} prompts x {new} new tokens, {args.repeats} repeats, "
          f"device {args.device}, {torch.get_num_threads()} threads")
    per_repeat, totals, identical = measure(methods, prompts, args.repeats, warm_every_prompt=args.fast)
    results = report(per_repeat, totals, gammas)
    ratios = [("speculative", "assisted"), ("speculative fast", "assisted"), ("autoregressive fast", "autoregressive"),
              ("speculative fast", "autoregressive fast")]
    for mine, theirs in ratios:
        if mine in per_repeat and theirs in per_repeat:
            ratio = [m / t for m, t in zip(per_repeat[mine], per_repeat[theirs], strict=True)]
            print(f"{mine} / {theirs}: {spread(ratio)}")
            results[f"{mine.replace(' ', '_')}_over_{theirs.replace(' ', '_')}"] = ratio
    print(f"greedy outputs identical across methods: {identical}")
    results["greedy_outputs_identical"] = identical
    return results


if __name__ == "__main__":
    main()
