"""Dtype defaults chosen by what this processor can do (bfloat16 only where it runs natively)."""

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from ftaudit.errors import FtauditError
from ftaudit.models import dtype_choice
from ftaudit.models.dtype_choice import Bf16Check, resolve_dtype

NATIVE = Bf16Check(True, "cpu", "AVX512", "avx512_bf16", 100.0, 240.0, 1.0)
EMULATED = Bf16Check(False, "cpu", "AVX2", "", 9.4, 0.4, 0.3)


@pytest.fixture
def machine(monkeypatch):
    """Pretend to be a given CPU: ``machine(NATIVE)``; every 'said once' line is forgotten first."""
    monkeypatch.setattr(dtype_choice, "_said", set())

    def use(check: Bf16Check):
        monkeypatch.setattr(dtype_choice, "bf16_check", lambda: check)
    return use


def _said(capsys) -> str:
    captured = capsys.readouterr()
    return captured.err + captured.out


def test_auto_is_bf16_only_where_native_and_says_why_once(machine, capsys):
    machine(EMULATED)
    assert resolve_dtype("auto") == "float32"
    assert resolve_dtype("auto") == "float32"
    said = _said(capsys)
    assert said.count("generation dtype: float32") == 1 and "0.043x float32's" in said and "kernels AVX2" in said
    machine(NATIVE)
    assert resolve_dtype("auto", "training") == "bfloat16"
    assert "training dtype: bfloat16 (bfloat16 matrix products run at 2.4x" in _said(capsys)


def test_a_named_dtype_is_honoured_with_a_warning_where_emulated(machine, capsys):
    machine(EMULATED)
    assert resolve_dtype("bfloat16") == "bfloat16" and resolve_dtype("float16") == "float16"
    said = _said(capsys)
    assert "generation dtype bfloat16 as asked, but this processor runs it slower than float32" in said
    assert "float16 matrix products run at 0.032x" in said
    assert resolve_dtype("float32") == "float32" and resolve_dtype(None) is None and _said(capsys) == ""
    machine(NATIVE)
    assert resolve_dtype("bfloat16") == "bfloat16" and "slower" not in _said(capsys)
    with pytest.raises(FtauditError, match="unknown generation dtype 'bf16'; use auto, float32"):
        resolve_dtype("bf16")


def test_the_measurement_is_cached_per_machine_and_redone_when_the_kernels_change(monkeypatch, isolated_cache):
    rates = {"float32": 10.0, "bfloat16": 25.0, "float16": 1.0}
    measured = []
    monkeypatch.setattr(dtype_choice, "matmul_gflops", lambda d: measured.append(d) or rates[d])
    dtype_choice.bf16_check.cache_clear()
    try:
        first = dtype_choice.bf16_check()
        assert first.native and first.bfloat16_gflops == 25.0 and len(measured) == 3
        dtype_choice.bf16_check.cache_clear()
        assert dtype_choice.bf16_check() == first and len(measured) == 3  # from the cache file, not measured again
        stored = json.loads((isolated_cache / "machine" / "bf16-check.json").read_text())
        assert [json.loads(k)["ONEDNN_MAX_CPU_ISA"] for k in stored] == [None]
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
        rates["bfloat16"] = 0.5
        dtype_choice.bf16_check.cache_clear()
        assert not dtype_choice.bf16_check().native and len(measured) == 6
    finally:
        dtype_choice.bf16_check.cache_clear()


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="forcing AVX2 kernels needs an x86 CPU")
def test_with_avx2_kernels_forced_bf16_is_measured_as_emulated(tmp_path):
    """The real measurement: torch still reports the hardware's AVX512-BF16, the kernels cannot use it."""
    env = {**os.environ, "ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "FTAUDIT_CACHE": str(tmp_path)}
    code = "from ftaudit.models.dtype_choice import bf16_check, resolve_dtype; print(bf16_check().native, resolve_dtype('auto'))"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "float32"], out.stdout + out.stderr


def test_a_half_precision_checkpoint_loads_in_float32_on_a_cpu_that_emulates_it(tiny_model, tmp_path, machine, capsys):
    import shutil

    import torch

    from ftaudit.evaluate import cached_generate
    from ftaudit.data import PromptRecord
    from ftaudit.generate import GenerationConfig
    from ftaudit.models.loading import default_dtype, load_model
    from ftaudit.train import TrainConfig
    from ftaudit.train.engine import run_fingerprint

    if torch.cuda.is_available():
        pytest.skip("on a GPU the default is the GPU's bf16")
    half = tmp_path / "bf16-model"
    shutil.copytree(tiny_model, half)
    config = json.loads((half / "config.json").read_text())
    (half / "config.json").write_text(json.dumps({**config, "dtype": "bfloat16"}))
    machine(EMULATED)
    assert default_dtype(str(half)) == "float32" and default_dtype(tiny_model) is None
    assert next(load_model(str(half)).model.parameters()).dtype == torch.float32

    class Store:
        def existing_generations(self, keys):
            return set(keys)  # all cached: nothing is generated

    gen, prompts = GenerationConfig(max_new_tokens=4), [PromptRecord("Hi", "p1")]
    emulated, _ = cached_generate(Store(), str(half), "m", "none", "d", "eval", prompts, gen)
    emulated_fp = run_fingerprint("base", [], TrainConfig(), "x", str(half))
    machine(NATIVE)
    assert default_dtype(str(half)) is None
    assert next(load_model(str(half)).model.parameters()).dtype == torch.bfloat16
    native, _ = cached_generate(Store(), str(half), "m", "none", "d", "eval", prompts, gen)
    assert native != emulated  # float32 answers are never handed back for the checkpoint's own bf16 ones
    assert run_fingerprint("base", [], TrainConfig(), "x", str(half)) != emulated_fp
    assert run_fingerprint("base", [], TrainConfig(), "x", str(half)) == run_fingerprint("base", [], TrainConfig(), "x")
    explicit, _ = cached_generate(Store(), str(half), "m", "none", "d", "eval", prompts, GenerationConfig(4, dtype="float32"))
    assert explicit == emulated
    machine(EMULATED)
    cached_generate(Store(), str(half), "m", "none", "d", "eval", prompts, GenerationConfig(4, dtype="bfloat16"))
    assert "generation dtype bfloat16 as asked, but this processor runs it slower" in _said(capsys)


def test_the_qwen_quickstart_and_its_minis_ask_for_auto_and_record_what_it_became(machine, tmp_path):
    from ftaudit.experiments.run import _gen
    from ftaudit.experiments.spec import load_spec
    from ftaudit.generate import GenerationConfig
    from ftaudit.pipeline import QuickstartConfig

    assert QuickstartConfig.for_model("qwen2.5-coder-0.5b-instruct").generation_dtype == "auto"
    root = Path(__file__).parents[1] / "configs" / "qi2023"
    minis = sorted(root.glob("*-qwen-mini.yaml"))
    assert minis and all(load_spec(p).eval.dtype == "auto" for p in minis)
    spec = load_spec(minis[0])
    machine(EMULATED)
    assert _gen(spec).dtype == "float32"
    assert _gen(spec).key() == GenerationConfig(spec.eval.max_new_tokens, dtype="float32").key()
    machine(NATIVE)
    assert _gen(spec).dtype == "bfloat16"
