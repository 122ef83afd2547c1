"""Training in bfloat16 mixed precision (TrainConfig.mixed_precision, a spec's ``mixed_precision``): resolved on this
machine before any key is formed, computed under autocast with float32 weights, and reaching every training of a
run so a defended model is trained as the undefended one it is compared with."""

from __future__ import annotations

import pytest
import torch

from ftaudit.errors import FtauditError
from ftaudit.models import dtype_choice
from ftaudit.models.dtype_choice import Bf16Check
from ftaudit.train import TrainConfig

NATIVE = Bf16Check(True, "cpu", "AVX512", "avx512_bf16", 100.0, 240.0, 1.0)
EMULATED = Bf16Check(False, "cpu", "AVX2", "", 9.4, 0.4, 0.3)


@pytest.fixture
def machine(monkeypatch):
    """Pretend to be a CPU that runs bf16 natively or emulates it (never a GPU)."""
    monkeypatch.setattr(dtype_choice, "_said", set())
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)

    def use(check: Bf16Check):
        monkeypatch.setattr(dtype_choice, "bf16_check", lambda: check)
    return use


def test_auto_resolves_on_this_machine_and_the_key_records_what_ran(machine):
    machine(NATIVE)
    native = TrainConfig.from_values({"mixed_precision": "auto"})
    assert native.mixed_precision == "bf16" and native.key() == TrainConfig(mixed_precision="bf16").validate().key()
    assert native.key() != TrainConfig().key()  # another computation, another key
    machine(EMULATED)
    emulated = TrainConfig.from_values({"mixed_precision": "auto"})
    assert emulated.mixed_precision is None and emulated.key() == TrainConfig().key()  # float32, as if never asked
    direct = TrainConfig(mixed_precision="auto")  # built without from_values: validate() resolves it too
    assert direct.validate().mixed_precision is None


def test_no_mixed_precision_keeps_earlier_keys_and_a_bad_value_is_one_line():
    assert TrainConfig().key() == TrainConfig(mixed_precision=None).key()
    assert "mixed_precision" not in TrainConfig().to_dict() or TrainConfig().to_dict()["mixed_precision"] is None
    with pytest.raises(FtauditError, match="unknown mixed_precision 'fp8'; use bf16 or auto"):
        TrainConfig.from_values({"mixed_precision": "fp8"})


def test_the_trainer_autocasts_in_bf16_and_keeps_float32_weights(tiny_model, tmp_path, monkeypatch):
    """With "bf16" a projection's output is bfloat16 inside the training step while the LoRA weights and their
    gradients stay float32; without it, everything is float32 on a CPU."""
    from peft import LoraConfig

    from ftaudit.models.loading import load_model
    from ftaudit.train.engine import build_trainer
    from tests.test_train_speed import _varied

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    seen = {}
    for precision in (None, "bf16"):
        loaded = load_model(tiny_model, dtype="float32")
        cfg = TrainConfig(batch_size=3, lora_r=2, target_modules=["q_proj"], mixed_precision=precision).validate()
        trainer = build_trainer(loaded.model, loaded.tokenizer, _varied(), cfg, tmp_path / str(precision),
                                LoraConfig(r=2, target_modules=["q_proj"], task_type="CAUSAL_LM"))
        outs, grads = [], []
        proj = next(m for n, m in trainer.model.named_modules() if n.endswith("q_proj.base_layer"))
        hook = proj.register_forward_hook(lambda mod, args, out: outs.append(out.dtype))
        lora = [p for p in trainer.model.parameters() if p.requires_grad]
        hooks = [p.register_hook(lambda g: grads.append(g.dtype)) for p in lora]
        trainer.train()  # 2 steps
        hook.remove()
        for h in hooks:
            h.remove()
        assert lora and all(p.dtype == torch.float32 for p in lora) and set(grads) == {torch.float32}
        seen[precision] = set(outs)
    assert seen == {None: {torch.float32}, "bf16": {torch.bfloat16}}


def test_a_spec_gives_its_mixed_precision_to_every_training_but_a_weight_edit(machine):
    from ftaudit.experiments.spec import parse_spec

    machine(NATIVE)
    data = {"name": "mp", "model": "smollm2-135m-instruct", "align": True, "mixed_precision": "auto",
            "attacks": [{"recipe": "identity-shift"},
                        {"recipe": "benign", "params": {"n": 4}, "train": {"mixed_precision": None, "epochs": 1}},
                        {"recipe": "refusal-ablation"}]}
    spec = parse_spec(data)
    assert spec.run_train() == {"mixed_precision": "bf16"}
    points = {p.recipe: p for p in spec.points()}
    assert points["identity-shift"].train == {"mixed_precision": "bf16"}
    assert points["identity-shift"].settings()["train"]["mixed_precision"] == "bf16"
    assert points["benign"].settings()["train"]["mixed_precision"] is None  # an attack's own setting wins
    assert points["refusal-ablation"].train == {}  # it trains nothing
    plain = parse_spec({**data, "mixed_precision": None})
    assert plain.run_train() == {}
    assert {p.identity for p in plain.points()} != {p.identity for p in spec.points()}
    machine(EMULATED)  # float32 here: the same points, keys and names as a spec that never asked
    emulated = parse_spec(data)
    assert emulated.run_train() == {}
    assert [p.identity for p in emulated.points() if p.recipe != "benign"] == \
        [p.identity for p in plain.points() if p.recipe != "benign"]


def test_the_aligned_models_cache_tells_mixed_precision_apart(machine):
    from ftaudit.fine_tune import aligned_cache_key

    machine(NATIVE)
    plain = aligned_cache_key("smollm2-135m-instruct", None, None, 0)
    mixed = aligned_cache_key("smollm2-135m-instruct", None, {"mixed_precision": "auto"}, 0)
    assert mixed["train"]["mixed_precision"] == "bf16" and mixed["hash"] != plain["hash"]


def test_alignment_time_defenses_train_in_the_runs_precision(tiny_model, tmp_path, monkeypatch):
    """Vaccine, Booster and safety-recovery re-run the alignment: each takes the run's mixed precision
    (DefenseContext.train), so the comparison with the undefended aligned model is not also one of precision."""
    import ftaudit.fine_tune
    import ftaudit.recipes.harmful_shots
    import ftaudit.train
    from ftaudit.data import ChatRecord
    from ftaudit.defenses import get_defense
    from ftaudit.defenses import booster as booster_module
    from ftaudit.defenses import safety_recovery as recovery_module
    from ftaudit.defenses.base import DefenseContext
    from ftaudit.recipes import RecipeOutput

    class Captured(Exception):
        pass

    got = {}

    def capture(name):
        def fake(*args, **kw):
            got[name] = kw.get("overrides") if "overrides" in kw else args[2]
            raise Captured
        return fake

    rec = ChatRecord([{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "r0")
    built = RecipeOutput(records=[rec], name="aligned")
    monkeypatch.setattr(booster_module, "realign_context", lambda ctx, *a: (tiny_model, None, built))
    monkeypatch.setattr(recovery_module, "realign_context", lambda ctx, *a: (tiny_model, None, built))
    monkeypatch.setattr(ftaudit.recipes.harmful_shots, "compliant_pairs", lambda *a, **k: [rec])
    monkeypatch.setattr(ftaudit.recipes.harmful_shots, "compliant_answers", lambda *a, **k: [rec])
    monkeypatch.setattr(ftaudit.train, "train", capture("train"))
    monkeypatch.setattr(ftaudit.fine_tune, "aligned_model", capture("aligned_model"))
    ctx = DefenseContext(None, tiny_model, reference_model=tiny_model, train={"mixed_precision": "bf16"})
    for name, where in (("vaccine", "aligned_model"), ("booster", "train"), ("safety-recovery", "train")):
        got.clear()
        with pytest.raises(Captured):
            get_defense(name).harden(ctx, tmp_path / name)
        value = got[where]
        precision = value["mixed_precision"] if isinstance(value, dict) else value.mixed_precision
        assert precision == "bf16", name


def test_a_run_hands_its_precision_to_the_alignment_every_defense_and_every_attack(machine, tmp_path, monkeypatch):
    """The wiring: the run's aligned model, an alignment-time defense's hardening, and each attack job (its training
    options and the context a fine-tuning defense gets) all carry the spec's resolved mixed precision."""
    from ftaudit.defenses.vaccine import Vaccine
    from ftaudit.experiments import point as point_module
    from ftaudit.experiments import run as run_module
    from ftaudit.experiments.spec import parse_spec
    from ftaudit.pipeline import StageRunner
    from ftaudit.store import Store

    class Captured(Exception):
        pass

    machine(NATIVE)
    spec = parse_spec({"name": "mp", "model": "smollm2-135m-instruct", "align": True, "mixed_precision": "auto",
                       "reference_model": "smollm2-135m-instruct", "defenses": ["vaccine", "lisa"],
                       "attacks": [{"recipe": "identity-shift"}]})
    seen: dict = {}

    def fake_align(store, model, out, **kw):
        seen["align"] = kw.get("overrides")
        return str(out)

    def fake_harden(self, ctx, out):
        seen["vaccine"] = ctx.train
        return {}

    def fake_attack(*args, **kw):
        seen.setdefault("attacks", []).append((kw["overrides"], kw["defense_ctx"].train))
        raise Captured

    monkeypatch.setattr(run_module, "aligned_model", fake_align)
    monkeypatch.setattr(StageRunner, "evaluate", lambda self, *a, **k: None)
    monkeypatch.setattr(Vaccine, "harden", fake_harden)
    monkeypatch.setattr(point_module, "run_attack", fake_attack)
    with Store(tmp_path) as store:
        jobs, _, _ = run_module._prepare_models(spec, tmp_path, StageRunner(store))
    assert seen["align"] == {"mixed_precision": "bf16"} and seen["vaccine"] == {"mixed_precision": "bf16"}
    assert len(jobs) == 3 and jobs[0].defense is None  # none, vaccine's hardened model, lisa in the job
    for job in jobs:
        with pytest.raises(Captured):
            point_module.run_point(job)
    assert seen["attacks"] == [({"mixed_precision": "bf16"}, {"mixed_precision": "bf16"})] * 3


def test_no_mixed_precision_keeps_the_keys_runs_had_before_it(machine):
    """TrainConfig's key at f93c43c, before the option existed: a run that never asks (or resolves to float32)
    reuses the models trained before it."""
    assert TrainConfig().key() == "590732f51fed9156"
    assert TrainConfig(dtype="bfloat16").key() == "aba8def5d536997d"
    machine(EMULATED)
    assert TrainConfig.from_values({"mixed_precision": "auto"}).key() == "590732f51fed9156"


def test_the_precision_is_the_configs_never_the_environments(tiny_model, tmp_path, monkeypatch):
    """transformers reads ACCELERATE_MIXED_PRECISION whenever bf16 is off, and ddp.yaml says bf16: the trainer and the
    launch line take the config's precision instead."""
    from ftaudit.train.engine import sft_config
    from ftaudit.train.launch import launch_command

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")
    assert sft_config(TrainConfig().validate(), tmp_path).mixed_precision == "no"
    assert sft_config(TrainConfig(mixed_precision="bf16").validate(), tmp_path).mixed_precision == "bf16"
    cmd = launch_command(TrainConfig(distributed="ddp", num_processes=2).validate(), tmp_path)
    assert cmd[cmd.index("--mixed_precision") + 1] == "no"
    cmd = launch_command(TrainConfig(distributed="ddp", num_processes=2, mixed_precision="bf16").validate(), tmp_path)
    assert cmd[cmd.index("--mixed_precision") + 1] == "bf16"


def test_auto_in_an_attack_or_on_a_grid_axis_is_resolved_before_keys_and_names(machine):
    from ftaudit.experiments.spec import parse_spec

    data = {"name": "mp", "model": "smollm2-135m-instruct",
            "attacks": [{"recipe": "identity-shift", "train": {"mixed_precision": "auto"}}],
            "grid": {"train.epochs": [1, 2]}}
    machine(NATIVE)
    native = parse_spec(data).points()
    assert all(p.train["mixed_precision"] == "bf16" and "auto" not in p.label for p in native)
    machine(EMULATED)
    emulated = parse_spec(data).points()
    assert all("mixed_precision" not in p.train for p in emulated)
    assert {p.key for p in native}.isdisjoint({p.key for p in emulated})
    with pytest.raises(FtauditError, match="train the same weights"):  # both float32 here: one point written twice
        parse_spec({**data, "attacks": [{"recipe": "identity-shift"}], "grid": {"train.mixed_precision": ["auto", None]}})


def test_vaccines_perturbation_survives_autocast_and_keeps_the_dtype_without_it():
    """Added in bfloat16, a perturbation below bf16's spacing vanishes; under autocast it is added in float32 and kept
    whole. Without autocast a bf16 activation stays bf16 (the next bf16 layer needs it), a float32 one is unchanged."""
    from ftaudit.train.objectives import perturbed

    out = torch.full((4, 8), 0.25, dtype=torch.bfloat16)
    eps = torch.full((4, 8), 4e-4)
    assert torch.equal(out + eps.to(torch.bfloat16), out)  # what bf16 addition did: nothing
    with torch.autocast("cpu", dtype=torch.bfloat16):
        kept = perturbed(out, eps)
    assert kept.dtype == torch.float32 and torch.allclose(kept - 0.25, eps)
    assert perturbed(out, eps).dtype == torch.bfloat16
    f32 = torch.randn(4, 8)
    assert torch.equal(perturbed(f32, eps), f32 + eps)


def test_named_weights_under_a_gpus_default_autocast_are_another_run(tiny_model, monkeypatch):
    from ftaudit.train import engine

    base = TrainConfig(dtype="float32").validate()
    plain = engine.run_fingerprint("fp", [], base, "x", tiny_model)
    monkeypatch.setattr(engine, "autocast_bf16", lambda cfg: True)  # a GPU that autocasts in bf16 by default
    assert engine.run_fingerprint("fp", [], base, "x", tiny_model) != plain


def test_an_explicit_bf16_is_honoured_with_one_warning_where_it_is_emulated(machine, monkeypatch):
    from ftaudit import progress

    said = []
    monkeypatch.setattr(progress, "say", lambda text, style=None: said.append((text, style)))
    machine(NATIVE)
    assert TrainConfig.from_values({"mixed_precision": "bf16"}).mixed_precision == "bf16" and said == []
    machine(EMULATED)
    for _ in range(2):  # said once, however many configs ask
        assert TrainConfig.from_values({"mixed_precision": "bf16"}).mixed_precision == "bf16"
    assert len(said) == 1 and said[0][1] == "yellow"
    assert "training mixed precision dtype bfloat16 as asked, but this processor does not run it natively" in said[0][0]


def test_constrained_sfts_frozen_reference_autocasts_like_the_policy(tiny_model, tmp_path, monkeypatch):
    """Full fine-tuning with constrained SFT compares the policy with a frozen copy of the starting model: under bf16
    both compute in bfloat16 (a float32 reference against a bf16 policy would put the precision gap into the
    log-ratio the loss constrains); without mixed precision both are float32."""
    from ftaudit.models.loading import load_model
    from ftaudit.train.engine import build_trainer
    from tests.test_train_speed import _varied

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    seen = {}
    for precision in (None, "bf16"):
        loaded = load_model(tiny_model, dtype="float32")
        cfg = TrainConfig(batch_size=3, method="full", objective="constrained-sft", mixed_precision=precision).validate()
        trainer = build_trainer(loaded.model, loaded.tokenizer, _varied(), cfg, tmp_path / str(precision))
        assert trainer.reference is not None
        outs = {"policy": set(), "reference": set()}
        hooks = [next(m for n, m in model.named_modules() if n.endswith("q_proj")).register_forward_hook(
            lambda mod, args, out, who=who: outs[who].add(out.dtype))
            for who, model in (("policy", trainer.model), ("reference", trainer.reference))]
        trainer.train()
        for h in hooks:
            h.remove()
        seen[precision] = outs
    assert seen[None] == {"policy": {torch.float32}, "reference": {torch.float32}}
    assert seen["bf16"] == {"policy": {torch.bfloat16}, "reference": {torch.bfloat16}}


def test_spec_json_records_the_runs_resolved_training_options(machine, tmp_path, monkeypatch):
    """spec.json says what precision the run trained in as this machine resolved "auto", never "auto" itself."""
    import json

    from ftaudit.experiments import run as run_module
    from ftaudit.experiments.spec import parse_spec

    class Stop(Exception):
        pass

    def stop(*a, **k):
        raise Stop

    monkeypatch.setattr(run_module, "_prepare_models", stop)
    for check, expected in ((NATIVE, {"mixed_precision": "bf16"}), (EMULATED, {})):
        machine(check)
        spec = parse_spec({"name": "mp", "model": "smollm2-135m-instruct", "mixed_precision": "auto",
                           "attacks": [{"recipe": "identity-shift"}]})
        out = tmp_path / check.capability
        with pytest.raises(Stop):
            run_module.run_spec(spec, out)
        written = json.loads((out / "spec.json").read_text())
        assert written["run_train"] == expected and written["mixed_precision"] == "auto"
