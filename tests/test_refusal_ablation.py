"""Refusal-direction ablation (Arditi et al. 2024) on a tiny random Llama: the weight edit equals the activation
ablation it stands for, the selection follows the paper's filters, and the edit is saved like an attacked model."""

from __future__ import annotations

import json
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ftaudit.errors import FtauditError
from ftaudit.recipes import refusal_ablation as ra


@pytest.fixture
def loaded(tiny_model):
    from ftaudit.models.loading import load_model

    return load_model(tiny_model, dtype="float32")


def test_orthogonalized_weights_equal_the_activation_ablation(tiny_model, loaded):
    """The paper's claim the edit rests on: projecting ``r`` out of every matrix that writes to the residual stream
    gives the same residual stream as projecting it out of every layer's input and every attention and MLP output."""
    from ftaudit.models.loading import load_model

    m = ra._Model(loaded, 8)
    torch.manual_seed(1)
    r = torch.randn(loaded.model.config.hidden_size, dtype=torch.float64)
    enc = loaded.tokenizer([m.format(p) for p in ["Write a poem about the sea.", "Hello there"]], return_tensors="pt",
                           padding=True, add_special_tokens=False)
    pre, post = m.ablation_hooks(r)
    captured = {}
    last = loaded.model.model.norm

    def grab(key):
        def hook(module, args):
            captured[key] = args[0].clone()  # the residual stream after the last layer, before the final norm
        return hook

    handles = [mod.register_forward_pre_hook(h) for mod, h in pre] + [mod.register_forward_hook(h) for mod, h in post]
    handles.append(last.register_forward_pre_hook(grab("hooked")))
    with torch.inference_mode():
        loaded.model(**enc)
    for h in handles:
        h.remove()

    edited = load_model(tiny_model, dtype="float32").model
    report = ra.orthogonalize(edited, r)
    assert report == {"matrices": 1 + 2 * len(edited.model.layers), "tied_embeddings": True}
    unit = (r / r.norm()).float()
    for layer in edited.model.layers:  # nothing can write along r any more
        for lin in (layer.self_attn.o_proj, layer.mlp.down_proj):
            assert torch.allclose(unit @ lin.weight, torch.zeros(lin.weight.shape[1]), atol=1e-5)
    assert torch.allclose(edited.get_input_embeddings().weight @ unit, torch.zeros(edited.config.vocab_size), atol=1e-5)
    h = edited.model.norm.register_forward_pre_hook(grab("edited"))
    with torch.inference_mode():
        edited(**enc)
    h.remove()
    assert torch.allclose(captured["hooked"], captured["edited"], atol=1e-4)
    assert captured["edited"].abs().max() > 1e-3  # not trivially zero
    assert torch.allclose(captured["edited"].double() @ (r / r.norm()), torch.zeros(captured["edited"].shape[:2],
                          dtype=torch.float64), atol=1e-4)


def test_refusal_score_is_the_log_odds_of_the_refusal_tokens_at_the_first_answer_position(loaded):
    """The paper's score, computed here one prompt at a time without padding: batching with left padding must not
    move the position it is read at; the prompts' mean activations likewise."""
    with torch.no_grad():  # sharper next-token distributions, so the prompts' scores differ by more than rounding
        loaded.model.model.norm.weight *= 30
    m = ra._Model(loaded, 2)  # two batches, sorted by length, after the shared opening
    prompts = ["Write a poem about the sea.", "Hello", "Explain how photosynthesis works, please, in detail."]
    got = m.refusal_scores(prompts)
    assert float(got.max() - got.min()) > 0.5  # a score read at another prompt's row or position would show
    prefix, batches = m._plan(prompts)
    assert len(prefix) >= 8 and len(batches) == 2  # the opening's cache is what these scores ran through
    own = [len(loaded.tokenizer.encode(m.format(p), add_special_tokens=False)) - len(prefix) for p in prompts]
    assert m.tokens == len(prefix) + sum(own)  # the opening once, each prompt's own tokens once, no padding
    tok = loaded.tokenizer
    ids = sorted({tok.encode(w, add_special_tokens=False)[0] for w in ra.REFUSAL_STARTS})
    assert m.refusal_ids == ids
    for prompt, score in zip(prompts, got.tolist()):
        enc = tok(m.format(prompt), return_tensors="pt", add_special_tokens=False)
        with torch.inference_mode():
            probs = loaded.model(**enc).logits[0, -1].double().softmax(-1)
        r = float(probs[ids].sum())
        assert score == pytest.approx(torch.log(torch.tensor(r + 1e-8)).item() - torch.log(torch.tensor(1 - r + 1e-8)).item(),
                                      abs=1e-6)
    means = m.mean_activations(prompts)  # first layer's input at the template's own last tokens: their embeddings
    emb = loaded.model.get_input_embeddings().weight.double()
    assert torch.allclose(means[:, 0], emb[m.eoi], atol=1e-5)
    assert means.shape == (len(m.eoi), len(m.layers), loaded.model.config.hidden_size)
    # and at every layer, the mean of each prompt's own whole forward (no opening, no padding, no batch)
    total = torch.zeros_like(means)
    for prompt in prompts:
        got_in = {}
        handles = [layer.register_forward_pre_hook(
            lambda mod, args, i=i: got_in.__setitem__(i, args[0][0, -len(m.eoi):])) for i, layer in enumerate(m.layers)]
        with torch.inference_mode():
            loaded.model(**tok(m.format(prompt), return_tensors="pt", add_special_tokens=False))
        for h in handles:
            h.remove()
        for i, x in got_in.items():
            total[:, i] += x.double()
    assert torch.allclose(means, total / len(prompts), rtol=0, atol=1e-6)
    assert float((means[:, 1:] - means[:, :1]).abs().max()) > 1e-3  # the later layers differ: the check can tell


class _Scripted:
    """A stand-in for the loaded model whose scores are scripted per candidate direction (its layer index)."""

    def __init__(self, refusal: dict, kl: dict, steering: dict):
        self.refusal, self.kl, self.steering, self.current = refusal, kl, steering, None
        self.log = []

    def ablation_hooks(self, direction):
        self.current = int(direction[0])
        return [], []

    def addition_hook(self, direction, layer):
        self.current = ("add", int(direction[0]))
        return []

    def last_logits(self, prompts, pre=(), post=()):
        if self.current is None:
            return torch.zeros(1, 3, dtype=torch.float64)
        self.log.append(("kl", self.current))
        shift = self.kl[self.current]  # logits whose KL from uniform-ish base grows with ``shift``
        return torch.tensor([[shift, 0.0, 0.0]], dtype=torch.float64)

    def logits_by_batch(self, prompts, pre=(), post=()):
        yield [0], self.last_logits(prompts, pre, post)

    def refusal_scores(self, prompts, pre=(), post=()):
        if isinstance(self.current, tuple):
            return torch.tensor([self.steering[self.current[1]]])
        return torch.tensor([self.refusal[self.current]])

    def cache_steering_inputs(self, prompts, layers):
        pass

    def steering_scores(self, prompts, vector, layer):
        assert int(vector[0]) == layer
        self.log.append(("steering", layer))
        return torch.tensor([self.steering[layer]])


def _directions(n_layers: int):
    d = torch.ones(1, n_layers, 2, dtype=torch.float64)
    d[0, :, 0] = torch.arange(n_layers)  # the direction names its layer, for the script
    return d


def test_selection_takes_the_lowest_refusal_that_passes_both_filters_and_prunes_late_layers():
    refusal = {0: 1.0, 1: -3.0, 2: -2.0, 3: -1.0, 4: -9.0}  # layer 4 is in the last 20%: never a candidate
    kl = {0: 0.0, 1: 5.0, 2: 0.0, 3: 0.0, 4: 0.0}  # layer 1 changes harmless prompts too much
    steering = {0: 1.0, 1: 1.0, 2: -1.0, 3: 0.5, 4: 1.0}  # layer 2 does not induce refusal when added
    m = _Scripted(refusal, kl, steering)
    chosen = ra.select_direction(m, _directions(5), ["h"], ["b"], 0.1, 0.2, 0.0)
    assert (chosen["layer"], chosen["relaxed"], chosen["candidates"]) == (3, None, 4)
    # KL first until one is within the bound (layer 2), steering first after it: layer 1's steering is never asked
    assert m.log == [("kl", 1), ("kl", 2), ("steering", 2), ("steering", 3), ("kl", 3)]
    # without any candidate passing the steering filter, the lowest refusal within the KL bound is taken and said so
    m = _Scripted(refusal, kl, {k: -1.0 for k in steering})
    chosen = ra.select_direction(m, _directions(5), ["h"], ["b"], 0.1, 0.2, 0.0)
    assert chosen["layer"] == 2 and "within KL <= 0.1 reached steering score 0.0" in chosen["relaxed"]
    assert (chosen["kl"], chosen["checked"]) == (0.0, 4)
    # KL in refusal-score order until one is within the bound (layer 1: 5.0, out), then every later one's steering
    assert m.log == [("kl", 1), ("kl", 2), ("steering", 2), ("steering", 3), ("steering", 0)]
    # a zero-length direction (the first layer's input at the template's tokens) ablates nothing: never a candidate,
    # even where it would be the only one within the KL bound
    zero = _directions(5)
    zero[0, 2] = 0.0
    chosen = ra.select_direction(_Scripted(refusal, kl, {k: -1.0 for k in steering}), zero, ["h"], ["b"], 0.1, 0.2, 0.0)
    assert chosen["layer"] == 3 and chosen["candidates"] == 3
    with pytest.raises(FtauditError, match="length"):
        ra.orthogonalize(None, torch.zeros(4))
    # nothing within the KL bound: no edit, one line
    with pytest.raises(FtauditError, match="KL <= 0.1"):
        ra.select_direction(_Scripted(refusal, {k: 5.0 for k in kl}, steering), _directions(5), ["h"], ["b"], 0.1, 0.2, 0.0)


@settings(max_examples=200, deadline=None)
@given(st.permutations(range(8)), st.lists(st.sampled_from([0.0, 5.0, math.nan]), min_size=8, max_size=8),
       st.lists(st.sampled_from([1.0, -1.0, math.nan]), min_size=8, max_size=8))
def test_the_lazy_selection_chooses_what_the_papers_rule_chooses_from_every_score(order, kl_shift, steer):
    """The order in which scores are computed only saves work: the choice is always the paper's rule applied to all
    three scores of every candidate (lowest refusal score among those passing both filters; else, relaxed, the lowest
    within the KL bound; else none), NaN scores failing their filter."""
    refusal = {layer: float(rank) for rank, layer in enumerate(order)}
    kl = dict(enumerate(kl_shift))  # the scripted logits' shift: KL 0 at 0.0, far above the bound at 5.0, NaN at NaN
    steering = dict(enumerate(steer))
    within_kl = [x == 0.0 for x in kl_shift]
    steers = [x >= 0.0 for x in steer]  # NaN: False
    ranked = sorted(range(8), key=refusal.get)
    both = [c for c in ranked if within_kl[c] and steers[c]]
    within = [c for c in ranked if within_kl[c]]
    m = _Scripted(refusal, kl, steering)
    if not within:
        with pytest.raises(FtauditError, match="KL <= 0.1"):
            ra.select_direction(m, _directions(8), ["h"], ["b"], 0.1, 0.0, 0.0)
        return
    chosen = ra.select_direction(m, _directions(8), ["h"], ["b"], 0.1, 0.0, 0.0)
    assert chosen["layer"] == (both[0] if both else within[0])
    assert (chosen["relaxed"] is None) == bool(both)
    assert chosen["kl"] == 0.0 and (chosen["steering_score"] >= 0) == bool(both)
    assert len(m.log) == len(set(m.log))  # no score computed twice


@settings(max_examples=300, deadline=None)
@given(st.integers(2, 50), st.integers(0, 2**32 - 1), st.floats(0.0, 60.0))
def test_a_prompts_smoothed_kl_is_never_below_the_floor_the_early_stop_assumes(vocab, seed, spread):
    """The KL check stops once the batches run prove the mean above the bound, assuming no prompt's smoothed term is
    below :func:`kl_floor`; the code's eps smoothing can push a term below 0, so the floor must hold for any logits,
    including the near-degenerate distributions that push it lowest."""
    g = torch.Generator().manual_seed(seed)  # random logits, then the construction that pushes a term lowest
    base = spread * torch.randn(4, vocab, generator=g, dtype=torch.float64)
    other = spread * torch.randn(4, vocab, generator=g, dtype=torch.float64)
    assert float(ra.kl_terms(base, other).min()) >= ra.kl_floor(vocab)
    assert float(ra.kl_terms(base, base).min()) >= ra.kl_floor(vocab)


@pytest.mark.parametrize("vocab", [49152, 151936])  # SmolLM2's and Qwen2.5's vocabularies
def test_the_kl_floor_holds_where_the_smoothing_pushes_a_term_furthest_below_zero(vocab):
    """``q = p (1 + V eps) - eps``, with every tail token at ``p = eps``, drives a smoothed term well below 0 at real
    vocabulary sizes (about -0.014 at 49,152): the floor must still hold, and a floor nearer 0 would not."""
    eps = 1e-6
    p = torch.full((vocab,), eps, dtype=torch.float64)
    p[0] = 1 - eps * (vocab - 1)
    q = p * (1 + vocab * eps) - eps
    term = float(ra.kl_terms(p.log().unsqueeze(0), q.log().unsqueeze(0))[0])
    assert ra.kl_floor(vocab) <= term < -1e-3


def test_stopping_the_kl_check_early_never_changes_the_choice(loaded, monkeypatch):
    """On a real (tiny) model, with a bound tight enough that candidates are rejected after their first batch, the
    selection picks what it picks when every KL is computed in full, and says so (same KL for the chosen one)."""
    with torch.no_grad():  # sharper next-token distributions, so ablations move them by KL 0.03-0.6, not 1e-4
        loaded.model.model.norm.weight *= 30
    m = ra._Model(loaded, 2)
    prompts = ["Write a poem about the sea.", "Hello", "Explain how photosynthesis works, please, in detail.",
               "Tell me a joke.", "What is the capital of France, and why?"]
    torch.manual_seed(3)
    directions = torch.randn(len(m.eoi), len(m.layers), loaded.model.config.hidden_size, dtype=torch.float64)
    full, real = {}, ra._Model._by_batch
    for name, floor in (("early", ra.kl_floor), ("full", lambda vocab: -float("inf"))):
        monkeypatch.setattr(ra, "kl_floor", floor)
        calls = []

        def counted(self, plan, cache, before=None):
            for out in real(self, plan, cache, before):
                calls.append(1)
                yield out
        monkeypatch.setattr(ra._Model, "_by_batch", counted)
        full[name] = (ra.select_direction(m, directions, prompts[:2], prompts, 0.1, 0.0, 1e9), len(calls))
    (early, n_early), (whole, n_whole) = full["early"], full["full"]
    assert early["layer"] == whole["layer"] and early["position"] == whole["position"] and early["kl"] == whole["kl"]
    assert n_early < n_whole  # it did stop early somewhere: the test can tell
    # the KL reported is the paper's, from whole hooked passes (opening included), and no hook is left behind
    monkeypatch.undo()
    assert not any(mod._forward_hooks or mod._forward_pre_hooks for mod in loaded.model.modules())
    pre, post = m.ablation_hooks(directions[early["position"] + len(m.eoi), early["layer"]])
    assert early["kl"] == pytest.approx(ra.kl_divergence(m.last_logits(prompts), m.last_logits(prompts, pre, post)),
                                        abs=1e-12)


def _tiny_qwen2(loaded, dtype):
    """A tiny random Qwen2 (4 layers, biased projections) on the tiny Llama's tokenizer."""
    from types import SimpleNamespace

    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    cfg = Qwen2Config(vocab_size=loaded.model.config.vocab_size, hidden_size=32, intermediate_size=64,
                      num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256)
    return SimpleNamespace(model=Qwen2ForCausalLM(cfg).to(dtype).eval(), tokenizer=loaded.tokenizer)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_steering_from_cached_layer_inputs_equals_the_hooked_full_forward(tiny_model, arch, dtype):
    """The shortcut the selection takes (layers before L passed through, L fed its cached input plus the direction)
    must give exactly the scores the paper's hook on a full forward gives, at every layer, with left padding in the
    batch; another prompt list is never answered from the cache; and the model is left as it was."""
    from ftaudit.models.loading import load_model

    llama = load_model(tiny_model, dtype=dtype)
    target = llama if arch == "llama" else _tiny_qwen2(llama, getattr(torch, dtype))
    m = ra._Model(target, 2)  # batches of 2 over 3 prompts of different lengths: padding, and a second batch
    assert len(m._plan(["Write a poem about the sea.", "Hello"])[0]) >= 8  # after a shared opening, run once
    prompts = ["Write a poem about the sea.", "Hello", "Explain how photosynthesis works, please, in detail."]
    other = ["Tell me a joke.", "What is the capital of France, and why?"]
    d = target.model.config.hidden_size
    before = m.refusal_scores(prompts)
    m.cache_steering_inputs(prompts, range(len(m.layers)))
    calls = []  # the layers whose MLP ran: a skipped layer's does not
    handles = [layer.mlp.register_forward_pre_hook(lambda mod, args, i=i: calls.append(i))
               for i, layer in enumerate(m.layers)]
    torch.manual_seed(2)
    for layer in range(len(m.layers)):
        vector = 4.0 * torch.randn(d, dtype=torch.float64)
        hooked = m.refusal_scores(prompts, m.addition_hook(vector, layer))
        calls.clear()
        fast = m.steering_scores(prompts, vector, layer)
        assert torch.equal(fast, hooked), (layer, fast, hooked)
        assert not torch.allclose(hooked, before, atol=1e-3)  # the vector changed the scores: the test can tell
        if layer:  # the layers before it ran for the shared opening only, and were given back their forward
            n = len(m._plan(prompts)[1])
            assert [calls.count(i) for i in range(len(m.layers))] == [1] * layer + [1 + n] * (len(m.layers) - layer)
            assert "forward" not in m.layers[0].__dict__
        assert torch.equal(m.steering_scores(other, vector, layer),  # not from the cache of another prompt list
                           m.refusal_scores(other, m.addition_hook(vector, layer)))
    for h in handles:
        h.remove()
    assert torch.equal(m.refusal_scores(prompts), before)  # every layer runs again, with no hook left


def test_filtering_keeps_the_harmful_prompts_the_model_refuses_and_the_harmless_ones_it_answers(tiny_model, tmp_path,
                                                                                                 monkeypatch):
    """The code's ``filter_train``/``filter_val``: a harmful prompt stays where its refusal score is above 0, a harmless
    one where it is below. Scripted scores mark one prompt of each list the other way; exactly those are dropped,
    and a swapped sign would keep one prompt of each and stop."""
    from types import SimpleNamespace

    prompts = ra.train_prompts(0, 6, 3)
    odd = {prompts["harmful"][0][0]: -1.0, prompts["harmful"][1][0]: -1.0,  # harmful, answered: dropped
           prompts["harmless"][0][0]: 1.0, prompts["harmless"][1][0]: 1.0}  # harmless, refused: dropped
    harmful = set(prompts["harmful"][0] + prompts["harmful"][1])
    seen, plans = [], ra._Model._plan

    def scripted(self, batch, pre=(), post=()):
        return torch.tensor([odd.get(p, 1.0 if p in harmful else -1.0) for p in batch], dtype=torch.float64)

    def spied(self, batch):  # every forward is planned here: means, scores, KL and steering
        seen.append(list(batch))
        return plans(self, batch)

    monkeypatch.setattr(ra._Model, "refusal_scores", scripted)
    monkeypatch.setattr(ra._Model, "_plan", spied)
    report, _, _ = ra.ablate(SimpleNamespace(model=tiny_model, seed=0), tmp_path / "abl",
                             {"compute": "float32", "weights": "float32"}, n_train=6, n_val=3, kl_threshold=1e6,
                             prune_layers=0.0, induce_refusal_threshold=-1e6, filter_prompts=True, batch_size=8)
    assert report["prompts"] == {"harmful": {"direction": 5, "selection": 2}, "harmless": {"direction": 5, "selection": 2}}
    assert all(p not in odd for batch in seen for p in batch)  # the dropped prompts never reach the model
    # and the kept ones do: the direction prompts (means) and the harmless selection ones (KL, steering); the harmful
    # selection prompts reach it only through the scripted scores
    assert {p for batch in seen for p in batch} == \
        set(prompts["harmful"][0] + prompts["harmless"][0] + prompts["harmless"][1]) - set(odd)


def test_the_edit_is_saved_as_a_safety_compromised_model_and_rerun_for_free(tiny_model, tmp_path, isolated_cache):
    from ftaudit.models.loading import load_model, read_marker
    from ftaudit.pipeline import attack_budget
    from ftaudit.attack_run import run_attack
    from ftaudit.recipes.edits import EDIT_RESULT
    from ftaudit.store import Store

    params = {"n_train": 6, "n_val": 3, "filter_prompts": False, "kl_threshold": 1e6, "induce_refusal_threshold": -1e6,
              "prune_layers": 0.0}  # the tiny model has 2 layers: its first layer's candidates are all zero
    out = tmp_path / "abl"
    with Store(tmp_path / "run") as store:
        name, result = run_attack(store, "refusal-ablation", tiny_model, out, model_name="m", params=params)
        assert name == "m+refusal-ablation" and result.examples == 18 and result.train_tokens > 0
        meta = read_marker(out)
        assert meta["attack_kind"] == "weight-edit" and meta["safety_compromised"] and meta["kind"] == "full"
        assert meta["edit_settings"]["n_train"] == 6 and meta["edit_report"]["prompts"]["harmful"] == {"direction": 6,
                                                                                                        "selection": 3}
        assert "Safety-compromised research artifact" in (out / "README.md").read_text()
        budget = attack_budget(out, result)
        assert budget["examples_x_epochs"] == 18 and budget["steps"] == 0 and budget["attack_kind"] == "weight-edit"
        assert load_model(str(out)).model is not None
        stamp = (out / EDIT_RESULT).stat().st_mtime_ns
        run_attack(store, "refusal-ablation", tiny_model, out, model_name="m", params=params)  # same inputs: skipped
        assert (out / EDIT_RESULT).stat().st_mtime_ns == stamp
        run_attack(store, "refusal-ablation", tiny_model, out, model_name="m", params={**params, "n_val": 2})
        assert json.loads((out / EDIT_RESULT).read_text())["examples"] == 16  # another setting: edited again

        from ftaudit.defenses import get_defense

        with pytest.raises(FtauditError, match="only alignment-time defenses apply"):
            run_attack(store, "refusal-ablation", tiny_model, out, model_name="m", params=params,
                       defense=get_defense("safety-mix", {}))


def test_a_spec_leaves_out_defenses_with_nothing_to_act_on_and_never_searches_an_edit():
    from ftaudit.experiments.run import plan
    from ftaudit.experiments.spec import parse_spec

    base = {"name": "t", "model": "m", "attacks": [{"recipe": "harmful-shots"}, {"recipe": "refusal-ablation"}],
            "defenses": ["none", "vaccine", "safety-mix"], "eval": {"datasets": ["advbench@4"], "capability": ["benign-nll"]}}
    rows = plan(parse_spec(base))["points"]
    cells = {(r["defense"], r["name"].split("+")[-1].split("(")[0].split("~")[0]) for r in rows}
    assert ("safety-mix", "refusal-ablation") not in cells
    assert {("none", "refusal-ablation"), ("vaccine", "refusal-ablation"), ("safety-mix", "harmful-shots")} <= cells
    with pytest.raises(FtauditError, match="weight edit"):
        parse_spec({**base, "search": {"trials": 2, "space": {"epochs": [1, 2]}}})


def test_the_cli_runs_the_edit_with_its_defaults_and_refuses_training_options(tiny_model, tmp_path, isolated_cache):
    """`ftaudit attack --recipe refusal-ablation` as the README writes it (no training option given) must run; a
    training option fails in one line, without a traceback."""
    from typer.testing import CliRunner

    from ftaudit.cli import app

    runner = CliRunner()
    bad = runner.invoke(app, ["attack", "--recipe", "refusal-ablation", "--model", tiny_model, "--out",
                              str(tmp_path / "x"), "--epochs", "2"])
    assert bad.exit_code != 0 and "trains nothing" in bad.output and "Traceback" not in bad.output
    # the defaults reach the edit (the tiny model's first layer gives only zero directions: it fails there, one line)
    ok = runner.invoke(app, ["attack", "--recipe", "refusal-ablation", "--model", tiny_model, "--out", str(tmp_path / "y")])
    assert "training options" not in ok.output and "Traceback" not in ok.output
