"""The quality metrics (specsweep/data/metrics, loaded through specsweep.data.quality); the sandbox pass@1 runs code
in is tested in test_sandbox."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from types import ModuleType

import pytest

from specsweep.data import quality
from specsweep.errors import ConfigError
from specsweep.schema import DatasetConfig

ADD_PROMPT = "def add(a, b):\n"
ADD_TEST = "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(-1, 1) == 0\n\ncheck(add)\n"


def metric_script(name: str) -> ModuleType:
    """The metric's script as evaluate imported it (from its cache), for its helpers."""
    return sys.modules[type(quality.load(name)).__module__]


# Exact match


def test_exact_match_is_the_fraction_of_identical_strings():
    result = quality.load("exact_match").compute(predictions=["a b", "c", "d"], references=["a b", "c", "d "])
    assert result["exact_match"] == pytest.approx(2 / 3)
    assert result["exact_match_per_sample"] == [True, True, False]


# ROUGE


def test_rouge_english_matches_a_hand_computation():
    # Tokens: [the cat sat on the mat] vs [the cat lay on the mat]; case and the full stop are dropped.
    # Unigrams: 5 of 6 shared; bigrams: the-cat, on-the, the-mat = 3 of 5; LCS: the cat on the mat = 5.
    result = quality.load("rouge").compute(predictions=["The cat sat on the mat."],
                                           references=["the cat lay on the mat"], language="en")
    assert result["rouge1"] == pytest.approx(5 / 6)
    assert result["rouge2"] == pytest.approx(3 / 5)
    assert result["rougeL"] == pytest.approx(5 / 6)
    assert result["rougeL_per_sample"] == [pytest.approx(5 / 6)]


def test_rouge_japanese_uses_mecab_tokens():
    prediction, reference = "今日は悪い天気です", "今日は良い天気です"
    tokenizer = metric_script("rouge").MeCabTokenizer()
    assert tokenizer.tokenize(reference) == ["今日", "は", "良い", "天気", "です"]
    assert tokenizer.tokenize(prediction) == ["今日", "は", "悪い", "天気", "です"]
    assert tokenizer.tokenize("今日は、晴れ。") == ["今日", "は", "晴れ"]  # punctuation dropped, as in "en"

    rouge = quality.load("rouge")
    result = rouge.compute(predictions=[prediction], references=[reference], language="ja")
    # Unigrams: 4 of 5 shared; bigrams: 今日-は, 天気-です = 2 of 4; LCS: 今日 は 天気 です = 4.
    assert result["rouge1"] == pytest.approx(0.8)
    assert result["rouge2"] == pytest.approx(0.5)
    assert result["rougeL"] == pytest.approx(0.8)
    # The bug this avoids: the default tokenizer keeps only [a-z0-9], so Japanese text scores 0.
    assert rouge.compute(predictions=[prediction], references=[reference], language="en")["rougeL"] == 0.0


def test_rouge_code_counts_symbols():
    assert metric_script("rouge").CodeTokenizer().tokenize("x=a+b") == ["x", "=", "a", "+", "b"]
    rouge = quality.load("rouge")
    prediction, reference = "x = a + b", "x = a - b"
    result = rouge.compute(predictions=[prediction], references=[reference], language="code")
    # [x = a + b] vs [x = a - b]: 4 of 5 unigrams, bigrams x-=, =-a = 2 of 4.
    assert result["rouge1"] == pytest.approx(0.8)
    assert result["rouge2"] == pytest.approx(0.5)
    # The default tokenizer drops the operator and calls the two identical.
    assert rouge.compute(predictions=[prediction], references=[reference], language="en")["rouge1"] == 1.0


# pass@1


def test_pass_at_1_runs_the_tests_against_each_completion():
    completions = [
        "    return a + b\n",
        "    return a - b\n",
        # Everything from the first stop sequence on is not part of the function and must be cut.
        "    return a + b\n\nprint(add(1, 2))\nraise SystemExit(1)\n",
    ]
    result = quality.load("pass_at_1").compute(predictions=completions, references=[ADD_TEST] * 3,
                                               prompts=[ADD_PROMPT] * 3, timeout=5.0)
    assert result["pass_at_1_per_sample"] == [True, False, True]
    assert result["pass_at_1"] == pytest.approx(2 / 3)


def test_truncate_cuts_at_the_first_stop_sequence():
    truncate = metric_script("pass_at_1").truncate
    assert truncate("    return 1\n\n\ndef helper():\n    pass\n# note\n") == "    return 1\n\n"
    assert truncate("    x = 1\n# done\nclass A: pass") == "    x = 1"
    assert truncate("    return 1\n") == "    return 1\n"


# The API the sweep job calls


def test_score_summarises_and_reports_per_sample():
    outputs = ["    return a + b\n", "    return a - b\n"]
    baseline = ["    return a + b\n", "    return a + b\n"]
    summary, per_sample = quality.score(["exact_match", "rouge", "pass_at_1"], outputs, baseline, baseline,
                                        language="code", prompts=[ADD_PROMPT] * 2, tests=[ADD_TEST] * 2,
                                        execute_code=True)
    assert set(summary) == {"exact_match", "rouge1", "rouge2", "rougeL", "pass_at_1"} == set(quality.HIGHER_IS_BETTER)
    assert summary["exact_match"] == summary["pass_at_1"] == 0.5
    # [return a - b] vs [return a + b]: 3 of 4 unigrams.
    assert per_sample == [
        {"exact_match": 1.0, "rouge1": 1.0, "rouge2": 1.0, "rougeL": 1.0, "pass_at_1": 1.0},
        {"exact_match": 0.0, "rouge1": 0.75, "rouge2": pytest.approx(1 / 3), "rougeL": 0.75, "pass_at_1": 0.0},
    ]


def test_a_row_with_a_unit_test_gives_the_program_pass_at_1_runs():
    test = "def check(candidate):\n    assert candidate(2, 3) == 5\n"
    assert quality.test_program({"prompt": ADD_PROMPT, "test": test, "entry_point": "add"}) == test + "\ncheck(add)\n"
    assert quality.test_program({"prompt": ADD_PROMPT, "test": test}) is None  # no entry point to check
    assert quality.test_program({"text": "no test here"}) is None


def test_pass_at_1_is_opt_in_and_needs_tests():
    # A dataset lists pass@1 as applicable; without the opt-in nothing is executed and no score is made up.
    summary, per_sample = quality.score(["pass_at_1"], ["    return a + b\n"], [""], [""], prompts=[ADD_PROMPT],
                                        tests=[ADD_TEST])
    assert summary == {} and per_sample == [{}]
    quality.validate(DatasetConfig(metrics=["pass_at_1"], language="code", execute_code=False))
    with pytest.raises(ConfigError, match="unit test"):
        quality.score(["pass_at_1"], ["    return a + b\n"], [""], [""], prompts=[ADD_PROMPT], tests=[None],
                      execute_code=True)


def test_unknown_metric_and_language_are_config_errors():
    with pytest.raises(ConfigError, match=r"'bleu'.*exact_match, rouge, pass_at_1"):
        quality.score(["rouge", "bleu"], ["a"], ["a"], ["a"])
    with pytest.raises(ConfigError, match=r"en, ja, code.*'de'"):
        quality.validate(DatasetConfig(metrics=["rouge"], language="de", execute_code=False))


def test_loads_with_the_hub_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    module = quality.load.__wrapped__("exact_match")  # not the cached instance: load it again
    assert module.compute(predictions=["a"], references=["a"])["exact_match"] == 1.0


@pytest.mark.slow
def test_loads_in_a_fresh_cache_without_network(tmp_path):
    """evaluate reads HF_HOME at import and copies each script into it, so this needs a new interpreter."""
    script = (
        "import json\n"
        "from specsweep.data import quality\n"
        "print(json.dumps(quality.score(['exact_match', 'rouge'], ['a b'], ['a b'], ['a c'])[0]))\n"
    )
    # An unreachable proxy turns any attempt to reach the network into a failure.
    env = {**os.environ, "HF_HOME": str(tmp_path), "HF_HUB_OFFLINE": "1",
           "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9"}
    for variable in ("HF_EVALUATE_CACHE", "HF_MODULES_CACHE", "HF_DATASETS_CACHE"):
        env.pop(variable, None)
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["exact_match"] == 1.0
    assert summary["rouge1"] == pytest.approx(0.5)
    assert (tmp_path / "modules" / "evaluate_modules" / "metrics" / "rouge").is_dir()
