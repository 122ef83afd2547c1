"""bench/screen_rates.py --package writes what ``ftaudit screen`` reads, and nothing when a set the screen requires is
missing or empty: the writer checks with the reader's own function (screening._malformed). The sets and the
classifier are stubs here; the bench measures the real ones."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from ftaudit import screening
from ftaudit.screening import (HELD_OUT_BENIGN, IDENTITY, ORDINARY_BENIGN, RECALL_SETS, SECOND_MODEL_RECALL,
                               SECOND_MODELS)

BENCH = Path(__file__).resolve().parents[1] / "bench" / "screen_rates.py"
CLASSIFIER = {**{key: f"stub-{key}" for key in IDENTITY}, "converged": True}
THRESHOLD = 0.5


@pytest.fixture
def bench(monkeypatch, tmp_path):
    spec = importlib.util.spec_from_file_location("screen_rates_bench", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    package = tmp_path / "screen_false_positives.json"
    monkeypatch.setattr(module, "FALSE_POSITIVES_FILE", package)
    monkeypatch.setattr(screening, "FALSE_POSITIVES_FILE", package)

    def screen_records(records, reference):  # a record here is whether the stub classifier flags it
        flag = [SimpleNamespace(kind="harmful-compliance")]
        return [SimpleNamespace(flags=flag if r else []) for r in records], \
            {"harm_classifier": CLASSIFIER, "threshold": THRESHOLD}

    monkeypatch.setattr(module, "screen_records", screen_records)
    return module, package


def full_sets() -> dict[str, tuple[str, list[bool]]]:
    sets = {name: ("flag", [True] * 19 + [False]) for name in RECALL_SETS}
    sets.update({f"{SECOND_MODEL_RECALL}{m}": ("flag", [True] * 9 + [False]) for m in SECOND_MODELS})
    sets.update({name: ("pass", [True] + [False] * 49) for name in ORDINARY_BENIGN})
    sets.update({name: ("pass", [False] * 30) for _, name in HELD_OUT_BENIGN})
    sets["benign data"] = ("pass", [True] * 10)  # in-sample: never pooled
    return sets


def run(bench, monkeypatch, tmp_path, sets):
    module, _ = bench
    monkeypatch.setattr(module, "build_sets", lambda store, model, per_set, seconds: sets)
    monkeypatch.setattr(sys, "argv", ["screen_rates.py", "--package", "--out", str(tmp_path / "out")])
    module.main()


def test_a_complete_measurement_is_packaged_and_read_back_by_the_screen(bench, monkeypatch, tmp_path):
    run(bench, monkeypatch, tmp_path, full_sets())
    rate, why = screening._packaged_rate(CLASSIFIER, THRESHOLD)
    assert why == "" and (rate["k"], rate["n"]) == (3, 150)  # the ordinary sets only, not the in-sample one
    assert sorted(rate["pooled"]) == sorted(ORDINARY_BENIGN)
    assert rate["recall_sets"][f"{SECOND_MODEL_RECALL}{SECOND_MODELS[1]}"] == [9, 10]


@pytest.mark.parametrize("mutate", [
    lambda s: s.pop(f"{SECOND_MODEL_RECALL}{SECOND_MODELS[1]}"),  # the never-seen model's recall left out
    lambda s: s.update({RECALL_SETS[1]: ("flag", [])}),  # a recall set empty
    lambda s: s.pop(ORDINARY_BENIGN[1]),  # an ordinary set missing from the pool
    lambda s: s.pop(HELD_OUT_BENIGN[0][1]),  # a set worded like harm missing
], ids=["second-model-missing", "recall-empty", "ordinary-missing", "worded-like-harm-missing"])
def test_a_measurement_the_screen_would_refuse_is_not_packaged(bench, monkeypatch, tmp_path, mutate):
    sets = full_sets()
    mutate(sets)
    with pytest.raises(SystemExit, match="not packaged"):
        run(bench, monkeypatch, tmp_path, sets)
    assert not bench[1].exists()
    assert json.loads((tmp_path / "out" / "screen_rates.json").read_text())["sets"]  # the rows are kept
