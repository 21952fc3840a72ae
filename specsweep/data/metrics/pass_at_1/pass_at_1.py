"""pass@1 for HumanEval-style problems: the fraction of completions whose program passes its tests.

With one completion per problem, pass@1 is simply the pass rate. The program for a sample is
prompt + truncated completion + "\\n" + reference, where the reference is the problem's test code followed by
`check(<entry_point>)`. Programs run in a child process via specsweep.data.sandbox, never in this one: they are
model-written code.

This file is an `evaluate` module loaded by local path (specsweep.data.quality.load): evaluate copies it into its
cache and imports it from there, so it must not use relative imports.
"""

import evaluate

from specsweep.data.quality import mean, metric_info
from specsweep.data.sandbox import run_program

# Where a model that has finished the function body starts on something else (the usual HumanEval set).
STOP_SEQUENCES = ("\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n#")

_DESCRIPTION = "pass@1: the fraction of completions that pass their unit tests, run in a sandboxed child process."

_KWARGS_DESCRIPTION = """
Args:
    predictions (list[str]): completions of the prompts (the function bodies).
    references (list[str]): test programs: HumanEval's `test` followed by `check(<entry_point>)`.
    prompts (list[str]): the prompts the completions continue (signature and docstring).
    timeout (float): seconds each program may run; default 10.
Returns:
    pass_at_1 (float): the fraction of programs that exit cleanly (NaN for no samples).
    pass_at_1_per_sample (list[bool]): whether each program passed.
Examples:
    >>> pass_at_1.compute(predictions=["    return a + b\\n"], references=["assert add(1, 2) == 3"],
    ...                   prompts=["def add(a, b):\\n"])
    {'pass_at_1': 1.0, 'pass_at_1_per_sample': [True]}
"""


class PassAt1(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return metric_info(_DESCRIPTION, _KWARGS_DESCRIPTION)

    def _compute(self, predictions: list[str], references: list[str], prompts: list[str] | None = None,
                 timeout: float = 10.0) -> dict:
        if prompts is None or len(prompts) != len(predictions):
            raise ValueError(f"pass_at_1 needs one prompt per prediction: got {len(prompts or [])} prompts "
                             f"for {len(predictions)} predictions.")
        passed = [run_program(program(prompt, completion, test), timeout=timeout)
                  for prompt, completion, test in zip(prompts, predictions, references, strict=True)]
        return {"pass_at_1": mean(passed), "pass_at_1_per_sample": passed}


def truncate(completion: str) -> str:
    """The completion up to the first stop sequence: what follows is not part of the function."""
    cuts = [index for stop in STOP_SEQUENCES if (index := completion.find(stop)) != -1]
    return completion[: min(cuts, default=len(completion))]


def program(prompt: str, completion: str, test: str) -> str:
    return prompt + truncate(completion) + "\n" + test
