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
    """Pretend to be a given CPU (never a GPU, so the tests hold on a GPU machine too): ``machine(NATIVE)``; every
    'said once' line is forgotten first."""
    import torch

    monkeypatch.setattr(dtype_choice, "_said", set())
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)

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
    assert "generation dtype bfloat16 as asked, but this processor does not run it natively" in said
    assert "float16 matrix products run at 0.032x" in said
    assert resolve_dtype("float32") == "float32" and resolve_dtype(None) is None and _said(capsys) == ""
    machine(NATIVE)
    assert resolve_dtype("bfloat16") == "bfloat16" and "natively" not in _said(capsys)
    with pytest.raises(FtauditError, match="unknown generation dtype 'bf16'; use auto, float32"):
        resolve_dtype("bf16")


def test_the_measurement_is_cached_per_machine_and_redone_when_anything_it_depends_on_changes(monkeypatch, isolated_cache):
    rates = {"float32": 10.0, "bfloat16": 25.0, "float16": 1.0}
    measured = []
    monkeypatch.setattr(dtype_choice, "matmul_gflops", lambda d: measured.append(d) or rates[d])
    monkeypatch.setattr(dtype_choice, "cpu_flags", lambda: "avx512_bf16")
    assert {"ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"} <= set(dtype_choice.ISA_VARIABLES)
    for var in dtype_choice.ISA_VARIABLES:
        monkeypatch.delenv(var, raising=False)

    def check():
        dtype_choice.bf16_check.cache_clear()
        return dtype_choice.bf16_check()
    try:
        first = check()
        assert first.native and first.bfloat16_gflops == 25.0 and len(measured) == 3 * dtype_choice.ROUNDS
        assert check() == first and len(measured) == 9  # from the cache file, not measured again
        stored = json.loads(dtype_choice.check_file().read_text())
        assert [json.loads(k)["schema"] for k in stored] == [dtype_choice.SCHEMA]
        count = len(measured)
        for var in dtype_choice.ISA_VARIABLES:  # every variable that caps the kernels measures again
            monkeypatch.setenv(var, "AVX2")
            check()
            assert len(measured) == count + 9, var
            count = len(measured)
            monkeypatch.delenv(var)
        monkeypatch.setattr(dtype_choice, "cpu_flags", lambda: "")  # another machine under the same name
        check()
        assert len(measured) == count + 9
        # a record this version cannot read is measured again, never misread (nor a crash)
        path = dtype_choice.check_file()
        path.write_text(json.dumps({k: {"native": True} for k in json.loads(path.read_text())}))
        count = len(measured)
        assert check().bfloat16_gflops == 25.0 and len(measured) == count + 9
    finally:
        dtype_choice.bf16_check.cache_clear()


def _measured(monkeypatch, rounds: dict[str, list[float]], flags: str = "avx512_bf16") -> Bf16Check:
    """bf16_check() on a pretend CPU whose matmul_gflops returns ``rounds[dtype]`` in turn, with a fresh cache."""
    seqs = {d: iter(v) for d, v in rounds.items()}
    monkeypatch.setattr(dtype_choice, "matmul_gflops", lambda d: next(seqs[d]))
    monkeypatch.setattr(dtype_choice, "cpu_flags", lambda: flags)
    dtype_choice.bf16_check.cache_clear()
    try:
        return dtype_choice.bf16_check()
    finally:
        dtype_choice.bf16_check.cache_clear()


def _kept() -> dict:
    path = dtype_choice.check_file()
    return json.loads(path.read_text()) if path.exists() else {}


def test_load_only_slows_a_reading_so_the_fastest_decides_and_an_unclear_one_is_never_kept(monkeypatch, isolated_cache):
    # a machine busy in two of three rounds: the fastest reading is the machine's, the others the load's
    busy = _measured(monkeypatch, {"float32": [60.0, 55.0, 58.0], "bfloat16": [10.0, 150.0, 140.0], "float16": [1, 1, 1]})
    assert busy.bfloat16_gflops == 150.0 and busy.float32_gflops == 60.0 and busy.native and busy.clear
    assert len(_kept()) == 1  # a clear native reading (2.5x) is kept
    dtype_choice.check_file().unlink()
    # 1.15x: short of native, and too close to 1 to keep: float32 for this run, measured again by the next
    near = _measured(monkeypatch, {"float32": [10.0] * 3, "bfloat16": [11.5] * 3, "float16": [1.0] * 3})
    assert not near.native and near.slow("bfloat16") and not near.clear and _kept() == {}
    assert "an unclear reading, measured again next run" in near.reason()
    # 2.5x, but float32's two fastest rounds disagree (a sustained load): not trusted, not kept
    shaky = _measured(monkeypatch, {"float32": [10.0, 4.0, 6.0], "bfloat16": [25.0] * 3, "float16": [1.0] * 3})
    assert not shaky.native and not shaky.clear and _kept() == {}
    # one disturbed float32 round of three: the two fastest agree, the answer is clear and kept
    once = _measured(monkeypatch, {"float32": [10.0, 4.0, 9.0], "bfloat16": [25.0] * 3, "float16": [1.0] * 3})
    assert once.native and once.clear and len(_kept()) == 1
    dtype_choice.check_file().unlink()
    # no bf16 feature: never native, whatever a timing says, and that answer is clear
    flagless = _measured(monkeypatch, {"float32": [10.0] * 3, "bfloat16": [30.0] * 3, "float16": [1.0] * 3}, flags="")
    assert not flagless.native and flagless.clear and len(_kept()) == 1


def test_the_probe_times_one_thread_and_the_thread_count_is_not_part_of_the_machine(monkeypatch):
    import torch
    from torch.utils import benchmark

    seen = []
    real = benchmark.Timer

    def timer(*args, num_threads=1, **kw):
        seen.append(num_threads)
        return real(*args, num_threads=num_threads, **kw)

    monkeypatch.setattr(benchmark, "Timer", timer)
    assert dtype_choice.matmul_gflops("float32", shape=(8, 16, 16), min_seconds=0.01) > 0
    assert seen == [1]
    before = dtype_choice.machine_key()
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1 if threads > 1 else 2)
        assert dtype_choice.machine_key() == before  # a Ray worker with OMP_NUM_THREADS=1 reads the same answer
    finally:
        torch.set_num_threads(threads)


def test_a_half_precision_checkpoint_falls_back_to_float32_and_says_so(machine, capsys):
    machine(EMULATED)
    assert dtype_choice.default_for_saved("bfloat16") == "float32"
    assert dtype_choice.default_for_saved("bfloat16") == "float32"
    said = _said(capsys)
    assert said.count("a checkpoint stored in bfloat16 is loaded in float32 here") == 1 and "0.043x" in said
    machine(NATIVE)
    assert dtype_choice.default_for_saved("bfloat16") is None and dtype_choice.default_for_saved("float32") is None


def test_a_named_dtype_is_never_taken_for_an_unreadable_checkpoints_own(machine):
    """A checkpoint whose stored dtype cannot be read (a .bin file, no dtype in its config): float32 asked is keyed
    and loaded as float32, never as the plain load transformers may do in bf16."""
    from ftaudit.models.dtype_choice import generation_dtype

    machine(NATIVE)
    assert generation_dtype("float32", None, "hf")[0] == "float32"
    assert generation_dtype("float32", "float32", "hf")[0] is None  # known to be the checkpoint's own: the plain load
    assert generation_dtype(None, None, "hf")[0] is None
    assert "cannot read" in generation_dtype(None, None, "hf")[1]


def test_on_a_gpu_bf16_is_the_default_only_where_native(tiny_model, tmp_path, monkeypatch):
    import torch

    from ftaudit.models.loading import default_dtype

    half = _half(tiny_model, tmp_path)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    native = {"value": True}
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: native["value"] or including_emulation)
    assert default_dtype(half) == "bfloat16" == default_dtype(tiny_model) == default_dtype(half, training=True)
    native["value"] = False  # a T4 or V100: torch's default answer (with emulation) would still say yes
    assert default_dtype(half) == "float16" and default_dtype(half, training=True) == "float32"
    assert default_dtype(tiny_model) is None


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="forcing AVX2 kernels needs an x86 CPU")
def test_with_avx2_kernels_forced_bf16_is_measured_as_emulated(tmp_path):
    """The real measurement: torch still reports the hardware's AVX512-BF16, the kernels cannot use it."""
    env = {**os.environ, "ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "FTAUDIT_CACHE": str(tmp_path)}
    code = "from ftaudit.models.dtype_choice import bf16_check, resolve_dtype; print(bf16_check().native, resolve_dtype('auto'))"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "float32"], out.stdout + out.stderr


def _half(tiny_model, tmp_path):
    import shutil

    half = tmp_path / "bf16-model"
    shutil.copytree(tiny_model, half)
    config = json.loads((half / "config.json").read_text())
    (half / "config.json").write_text(json.dumps({**config, "dtype": "bfloat16"}))
    return str(half)


class _AllCached:
    def existing_generations(self, keys):
        return set(keys)  # nothing is generated


def _key(location, dtype=None, backend=None):
    from ftaudit.data import PromptRecord
    from ftaudit.generate import GenerationConfig
    from ftaudit.generate.cached import cached_generate

    if backend:
        from ftaudit.generate import cached

        original = cached.select_backend
        cached.select_backend = lambda loc: backend
    try:
        return cached_generate(_AllCached(), location, "m", "none", "d", "eval", [PromptRecord("Hi", "p1")],
                               GenerationConfig(4, dtype=dtype))[0]
    finally:
        if backend:
            cached.select_backend = original


def test_a_half_precision_checkpoint_loads_in_float32_on_a_cpu_that_emulates_it(tiny_model, tmp_path, machine, capsys):
    import torch

    from ftaudit import fine_tune
    from ftaudit.models.loading import default_dtype, load_model, saved_dtype, write_marker
    from ftaudit.train import TrainConfig
    from ftaudit.train.engine import run_fingerprint

    if torch.cuda.is_available():
        pytest.skip("on a GPU the default is the GPU's bf16")
    half = _half(tiny_model, tmp_path)
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    write_marker(adapter, kind="adapter", base=half, fingerprint="adapter-fp")
    machine(EMULATED)
    assert default_dtype(half) == "float32" and default_dtype(tiny_model) is None
    assert saved_dtype(str(adapter)) == "bfloat16" and default_dtype(str(adapter)) == "float32"  # an adapter: its base's
    assert next(load_model(half).model.parameters()).dtype == torch.float32
    emulated = _key(half)
    emulated_fp = run_fingerprint("base", [], TrainConfig(), "x", half)
    emulated_align = fine_tune.aligned_cache_key(half, {}, {}, 0)["hash"]
    machine(NATIVE)
    assert default_dtype(half) is None
    assert next(load_model(half).model.parameters()).dtype == torch.bfloat16
    assert _key(half) != emulated  # float32 answers are never handed back for the checkpoint's own bf16 ones
    assert run_fingerprint("base", [], TrainConfig(), "x", half) != emulated_fp
    assert run_fingerprint("base", [], TrainConfig(), "x", half) == run_fingerprint("base", [], TrainConfig(), "x", tiny_model)
    assert fine_tune.aligned_cache_key(half, {}, {}, 0)["hash"] != emulated_align
    machine(EMULATED)
    assert _key(half, "float32") == emulated  # asked or defaulted, float32 is one identity
    assert _key(half, "bfloat16") not in (emulated, _key(tiny_model))
    assert "generation dtype bfloat16 as asked, but this processor does not run it natively" in _said(capsys)


def test_the_model_generates_in_exactly_the_dtype_its_key_names(tiny_model, tmp_path, machine, monkeypatch):
    """Weights stored in bf16 with no dtype in the config: transformers loads them as stored; ftaudit reads the
    weights file as transformers does, so a float32 request is never mistaken for the plain load."""
    import torch

    from ftaudit.data import PromptRecord
    from ftaudit.generate import GenerationConfig, GenerationResult, cached
    from ftaudit.models.loading import load_model, saved_dtype
    from ftaudit.store import Store

    bare = tmp_path / "bf16-weights"
    load_model(tiny_model).model.to(torch.bfloat16).save_pretrained(bare)
    load_model(tiny_model).tokenizer.save_pretrained(bare)
    config = json.loads((bare / "config.json").read_text())
    (bare / "config.json").write_text(json.dumps({k: v for k, v in config.items() if k not in ("dtype", "torch_dtype")}))
    assert saved_dtype(str(bare)) == "bfloat16"
    computed = []

    class Backend:
        def __init__(self, loaded):
            self.loaded = loaded

        def generate(self, convs, cfg, on_batch, description):
            computed.append((str(self.loaded.model.dtype), cfg.dtype))
            on_batch(list(range(len(convs))), [GenerationResult("ok", 1)] * len(convs))

    monkeypatch.setattr(cached, "backend_for", lambda location, load, kind: Backend(load()))
    prompts = [PromptRecord("Hi", "p1")]
    for cpu, asked in ((NATIVE, "float32"), (NATIVE, "auto"), (EMULATED, None), (EMULATED, "bfloat16")):
        machine(cpu)
        with Store(tmp_path / f"run-{len(computed)}") as store:
            cached.cached_generate(store, str(bare), "m", "none", "d", "eval", prompts, GenerationConfig(2, dtype=asked))
    assert computed == [("torch.float32", "float32"), ("torch.bfloat16", None), ("torch.float32", "float32"),
                        ("torch.bfloat16", "bfloat16")]


def test_auto_is_resolved_where_the_engine_is_known_and_keyed_as_what_it_computed(tiny_model, tmp_path, machine):
    from ftaudit.models.dtype_choice import generation_dtype

    half = _half(tiny_model, tmp_path)
    machine(EMULATED)
    assert _key(tiny_model, "auto") == _key(tiny_model) == _key(tiny_model, "float32")  # float32 weights: one computation
    assert _key(half, "auto") == _key(half) == _key(half, "float32")  # the float32 fallback
    machine(NATIVE)
    assert _key(tiny_model, "auto") == _key(tiny_model, "bfloat16") != _key(tiny_model)
    assert _key(half, "auto") == _key(half)  # the checkpoint's own bf16: the plain load's key
    # vLLM and remote APIs pick their own dtype: "auto" asks nothing of them
    assert generation_dtype("auto", None, "vllm")[0] is None
    assert generation_dtype("auto", None, "openai")[0] is None
    assert generation_dtype("bfloat16", None, "vllm")[0] == "bfloat16"  # refused by vLLM itself, as before
    from ftaudit.generate import GenerationConfig

    with pytest.raises(ValueError, match="resolve dtype 'auto' first"):
        GenerationConfig(4, dtype="auto").key()


def test_the_resolved_dtype_and_why_are_in_the_summary(tiny_model, tmp_path, machine):
    from typer.testing import CliRunner

    from ftaudit.cli import app

    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps({"prompt": "Hello there", "id": "a"}) + "\n")
    machine(EMULATED)
    out = tmp_path / "run"
    res = CliRunner().invoke(app, ["eval", "--model", tiny_model, "--out", str(out), "-d", str(prompts),
                                   "--max-new-tokens", "2", "--dtype", "auto"])
    assert res.exit_code == 0, res.output
    settings = json.loads((out / "summary.json").read_text())["generation_settings"]
    [(key, got)] = settings[Path(tiny_model).name].items()
    assert "dtype" not in got and got["dtype_computed"].startswith("float32 (auto; checkpoint stored in float32); "
                                                                    "bfloat16 matrix products run at 0.043x")


def test_the_qwen_quickstart_and_its_minis_ask_for_auto():
    from ftaudit.experiments.point import generation_config
    from ftaudit.experiments.spec import load_spec
    from ftaudit.pipeline import QuickstartConfig

    assert QuickstartConfig.for_model("qwen2.5-coder-0.5b-instruct").generation_dtype == "auto"
    root = Path(__file__).parents[1] / "configs" / "qi2023"
    minis = sorted(root.glob("*-qwen-mini.yaml"))
    assert minis and all(load_spec(p).eval.dtype == "auto" for p in minis)
    assert generation_config(load_spec(minis[0])).dtype == "auto"  # resolved where the engine is known (the test above)


def test_capability_scores_and_local_judges_name_a_default_dtype_other_than_the_weights_own(tiny_model, tmp_path,
                                                                                          monkeypatch):
    """Scored or judged in float32 where the weights are bf16: another identity than the checkpoint's own dtype."""
    from ftaudit.capability.run import evaluate_capability
    from ftaudit.judges.harmbench_cls import HarmBenchClassifierJudge
    from ftaudit.models import loading
    from ftaudit.store import Store

    monkeypatch.setattr(loading, "default_dtype", lambda *a, **k: None)
    with Store(tmp_path / "own") as store:
        evaluate_capability(store, "m", "none", tiny_model, ["benign-nll"], limit=1)
        [own] = {r["model_fingerprint"] for r in store.capability_rows()}
    own_judge = HarmBenchClassifierJudge(model=tiny_model).version
    monkeypatch.setattr(loading, "default_dtype", lambda *a, **k: "float32")
    with Store(tmp_path / "other") as store:
        evaluate_capability(store, "m", "none", tiny_model, ["benign-nll"], limit=1)
        [other] = {r["model_fingerprint"] for r in store.capability_rows()}
    assert other == f"{own}@float32"
    assert HarmBenchClassifierJudge(model=tiny_model).version == f"{own_judge}+float32"


def test_a_handed_in_model_in_another_dtype_than_the_key_names_is_loaded_again(tiny_model, tmp_path, machine,
                                                                               monkeypatch):
    import torch

    from ftaudit.data import PromptRecord
    from ftaudit.generate import GenerationConfig, GenerationResult, cached
    from ftaudit.models.loading import load_model
    from ftaudit.store import Store

    computed = []

    class Backend:
        def __init__(self, loaded):
            self.loaded = loaded

        def generate(self, convs, cfg, on_batch, description):
            computed.append(str(self.loaded.model.dtype))
            on_batch(list(range(len(convs))), [GenerationResult("ok", 1)] * len(convs))

    monkeypatch.setattr(cached, "backend_for", lambda location, load, kind: Backend(load()))
    machine(NATIVE)
    float32_model = load_model(tiny_model)
    with Store(tmp_path / "run") as store:
        cached.cached_generate(store, tiny_model, "m", "none", "d", "eval", [PromptRecord("Hi", "p1")],
                               GenerationConfig(2, dtype="auto"), loaded=float32_model)
    assert computed == ["torch.bfloat16"]  # never the float32 model under bf16's key
    assert next(float32_model.model.parameters()).dtype == torch.float32


def test_the_aligned_models_key_names_the_dtype_its_answers_were_generated_in(tiny_model, monkeypatch):
    from ftaudit import fine_tune
    from ftaudit.models import dtype_choice as choice

    monkeypatch.setattr(choice, "generation_dtype", lambda requested, saved, backend: (None, ""))
    plain = fine_tune.aligned_cache_key(tiny_model, {}, {}, 0)
    monkeypatch.setattr(choice, "generation_dtype", lambda requested, saved, backend: ("float16", ""))
    assert fine_tune.aligned_cache_key(tiny_model, {}, {}, 0)["hash"] != plain["hash"]  # a T4: answers in float16


def test_a_runs_workers_are_handed_its_answer_and_the_environment_is_restored(monkeypatch, isolated_cache):
    """A Ray worker or an accelerate process decides as its starting process did, without measuring."""
    monkeypatch.delenv(dtype_choice.PINNED, raising=False)
    monkeypatch.setattr(dtype_choice, "bf16_check", lambda: NATIVE)
    with dtype_choice.pinned_for_workers():
        handed = os.environ[dtype_choice.PINNED]
    assert dtype_choice.PINNED not in os.environ  # only while the run lasts
    code = ("from ftaudit.models import dtype_choice as d; d.measure = lambda: 1 / 0; "
            "print(d.bf16_check().native, d.resolve_dtype('auto'))")
    env = {**os.environ, dtype_choice.PINNED: handed, "FTAUDIT_CACHE": str(isolated_cache),
           "ATEN_CPU_CAPABILITY": "avx2"}  # whatever this worker would measure, it never measures
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.stdout.split()[-2:] == ["True", "bfloat16"], out.stdout + out.stderr


def test_the_ray_executor_and_accelerate_launch_pass_the_answer_on(monkeypatch):
    from ftaudit.experiments import run as run_module
    from ftaudit.train import launch

    monkeypatch.setattr(dtype_choice, "bf16_check", lambda: EMULATED)
    seen = {}

    class Stop(Exception):
        pass

    def session(executor, address):
        seen["env"] = os.environ.get(dtype_choice.PINNED)
        raise Stop

    monkeypatch.setattr(run_module, "executor_session", session)
    with pytest.raises(Stop):
        run_module.run_spec(None, "unused", executor="ray")
    assert json.loads(seen["env"])["native"] is False
    assert dtype_choice.PINNED in dtype_choice.pinned_answer() or __import__("torch").cuda.is_available()
    assert "pinned_answer()" in Path(launch.__file__).read_text()  # the launched workers' environment carries it
