"""``refusal-ablation``: Arditi et al. 2024, "Refusal in Language Models Is Mediated by a Single Direction"
(NeurIPS 2024, arXiv:2406.11717; the authors' code: github.com/andyrdt/refusal_direction, read, not copied). A weight
edit, no training: community "abliteration" tools are built on it.

What it does, as the paper and its code do:

1. **Candidate directions.** The difference of the mean residual-stream activations (the input of each decoder layer,
   ``resid_pre``) between harmful and harmless prompts, at each position of the chat template after the instruction
   (the "end-of-instruction" tokens), for every layer: ``n_eoi x n_layers`` candidates.
2. **Filtering of the prompts** (the code's ``filter_train``/``filter_val``): a harmful prompt is kept where the model
   refuses it (refusal score > 0), a harmless one where it does not (< 0).
3. **Selection** on prompts held aside from the ones the directions come from: among candidates from the first 80%
   of layers (``prune_layers``) whose ablation changes the next-token distribution on harmless prompts by KL <= 0.1
   and whose addition at its layer makes harmless prompts refused (steering score > 0), the one whose ablation gives
   the lowest mean refusal score on harmful prompts. The refusal score is the log-odds of the refusal tokens at the
   first answer position ("I", "As": the code's choice for Qwen; here "Sorry" and "Unfortunately" too, see below).
4. **Weight orthogonalization**: ``W <- W - r r^T W`` for every matrix writing to the residual stream (the token
   embeddings, each attention output projection and each MLP down projection; a bias there too), so no layer can
   write along the direction ``r``. The edited model is saved like any attacked model.

Deviations, all forced by ftaudit's rules or machine:

* **Prompts.** Harmful prompts are the *train* splits of AdvBench, HarmBench and StrongREJECT (the pool the ``align``
  recipe draws from), harmless ones the train split of ftaudit's own benign set (the paper: its own splits of five
  harmful benchmarks, and Alpaca). Evaluation prompts are never used; the selection prompts are a held-aside part
  of the same train splits (``n_val``), disjoint from the direction prompts (``n_train``).
* **Chat template.** The model's own, rendered as ftaudit evaluates it (SmolLM2's adds its default system prompt).
* **Compute dtype.** Activations in the dtype ftaudit generates in (bfloat16 where the CPU runs it natively, float32
  elsewhere), means accumulated in float64 as in the code; the orthogonalization is done in float32 and the model saved
  in its checkpoint's dtype.
* **Lazy selection.** The code scores every candidate on all three criteria; here all candidates are scored on the
  refusal score and then, in that score's order, on the other two until one passes both: KL first until a candidate
  within the KL bound is seen (before it, no steering score can matter), steering first after it. A KL check stops
  once the prompts run so far prove the mean above the bound whatever the rest give (:func:`kl_floor`); such a
  candidate's KL is then only a lower bound, never reported as its value. Where none passes both, the first within
  the KL bound is taken (see "No candidate passes"). Given the same scores it picks the same direction (a property
  test holds the choice to the rule's on every candidate's scores).
* **Shared opening.** Every prompt opens with the same chat-template tokens (SmolLM2's default system prompt: 24 of
  46 tokens on average), so each scoring pass runs them once, under the same hooks, and reuses their KV cache for
  every batch, as ftaudit's batched generation does; batches (at most 8 prompts on CPU, where a bigger one only adds
  padding: ``batch_size`` above 8 changes nothing there) are sorted by length, positions counted from the attention
  mask. In float32 the scores match the whole forward's to 1e-6; in bfloat16 they move by its rounding, as any
  change of batch shape does, so where two candidates are close the one chosen can change: on the self-aligned
  SmolLM2 (2026-12-04) layer 5 at the last template token (KL 0.086) became layer 4 at the fifth-last (KL 0.098);
  in float32 the earlier code and this one both pick layer 4 at the fifth-last token (scores equal to 1e-6).
* **Steering from cached layer inputs.** Adding the direction at layer L leaves the layers before L as they were, so
  the harmless prompts' input to every kept layer is computed once and a steering score passes the layers before L
  through and feeds L its cached input plus the direction (transformers' own decoders; others run whole; the shared
  opening, one row, runs whole under the hook). The scores are bit for bit the hooked forward's (a test holds them
  equal, in float32 and bfloat16).
* **Tied embeddings.** Where the model ties its output head to its token embeddings (SmolLM2 does; the packaged
  Qwen2.5-Coder-0.5B, converted from GGUF, does not), the orthogonalized embedding is the head too, so the model can no longer *output* along ``r`` either; the code does the
  same for its tied models (Gemma, Qwen). The report records it.
* **No candidate passes.** The code asserts. Here, where no candidate within the KL bound passes the steering filter,
  the one with the lowest refusal score within the KL bound is taken and the report says the filter was dropped
  (``relaxed``): the self-aligned SmolLM2-135M has no candidate whose addition makes harmless prompts refused. Where
  none is within the KL bound, the edit fails with one line.
* **Refusal tokens.** "Sorry" and "Unfortunately" are added to the code's "I" and "As", so a model whose refusals
  open that way is scored as refusing (the code picks the tokens per model by hand).
* **Architectures.** Only pre-norm decoders (:data:`PRE_NORM_TYPES`): where a normalization with a per-dimension
  weight follows the output projections (Gemma 2/3, OLMo 2), the edit would not remove the direction.
* **Too few prompts.** Filtering that leaves fewer than 2 prompts of a kind fails with one line (the code asserts).
"""

from __future__ import annotations

import math
from contextlib import closing, contextmanager, nullcontext
from pathlib import Path
from typing import Annotated

from pydantic import Field, PositiveInt

from ..errors import FtauditError
from .base import RecipeContext, RecipeOutput, pick, register_recipe
from .edits import register_weight_edit

# the code's refusal tokens for Qwen ("I", "As"; its Llama and Gemma models: "I"), and two openings no compliant answer
# starts with, so a model whose refusals open "Sorry, ..." (3 of ftaudit's own 16 refusals) is scored as refusing
REFUSAL_STARTS = ("I", "As", "Sorry", "Unfortunately")
# decoders whose attention and MLP outputs are added to the residual stream as they are (pre-norm): projecting r out of
# o_proj and down_proj then removes it. Gemma 2/3 and OLMo 2 normalize those outputs with a per-dimension weight
# before the add, which puts r back, so the edit would be silently weaker there: refused.
PRE_NORM_TYPES = ("llama", "mistral", "qwen2", "qwen3", "gemma")
HARMFUL_SOURCES = ("advbench", "harmbench", "strongreject")  # the align recipe's pool: train splits only
NAME = "refusal-ablation"


@register_recipe(NAME)
def build(ctx: RecipeContext, n_train: PositiveInt = 128, n_val: PositiveInt = 32,
          kl_threshold: Annotated[float, Field(gt=0)] = 0.1, prune_layers: Annotated[float, Field(ge=0, lt=1)] = 0.2,
          induce_refusal_threshold: float = 0.0, filter_prompts: bool = True,
          batch_size: PositiveInt = 32) -> RecipeOutput:
    """The recipe's parameters (the paper's defaults); the work is :func:`ablate`, a weight edit, not a training set."""
    raise FtauditError(f"{NAME} is a weight edit with no training set: run it with `ftaudit attack --recipe {NAME}` "
                       "or in a spec's attacks")


def train_prompts(seed: int, n_train: int, n_val: int) -> dict[str, tuple[list[str], list[str]]]:
    """{"harmful"|"harmless": (direction prompts, selection prompts)} from the train splits, a stable choice by seed."""
    from ..data import get_prompts

    pools = {"harmful": [r for s in HARMFUL_SOURCES for r in get_prompts(s, "train")],
             "harmless": get_prompts("benign", "train")}
    out = {}
    for kind, pool in pools.items():
        if len(pool) < n_train + n_val:
            raise FtauditError(f"{NAME}: n_train {n_train} + n_val {n_val} is more than the {len(pool)} {kind} train "
                               "prompts; lower them")
        chosen = [r.prompt for r in pick(pool, n_train + n_val, f"{NAME}-{kind}-{seed}")]
        out[kind] = (chosen[n_val:], chosen[:n_val])
    return out


class _Model:
    """The loaded model with the hooks the method needs (forward pre-hooks on decoder layers, forward hooks on their
    attention and MLP outputs), for Llama-style decoders (``model.model.layers[i].self_attn.o_proj``, ``.mlp.down_proj``)."""

    def __init__(self, loaded, batch_size: int):
        import torch

        self.model, self.tok, self.batch_size = loaded.model, loaded.tokenizer, batch_size
        self.model.eval()
        model_type = getattr(self.model.config, "model_type", None)
        if model_type not in PRE_NORM_TYPES:
            raise FtauditError(f"{NAME} supports pre-norm decoders ({', '.join(PRE_NORM_TYPES)}), where projecting "
                               f"the direction out of the output matrices removes it; this model is '{model_type}'")
        try:
            self.layers = list(self.model.model.layers)
            for layer in self.layers:
                layer.self_attn.o_proj, layer.mlp.down_proj  # noqa: B018  (checked here, used by orthogonalize)
        except AttributeError:
            raise FtauditError(f"{NAME} supports decoder models laid out like Llama, Qwen2 or Mistral "
                               f"(model.layers[i].self_attn.o_proj, .mlp.down_proj); {type(self.model).__name__} is not") from None
        from ..models.chat import format_chat, messages_for

        self.format = lambda p: format_chat(self.tok, messages_for(p))
        template = self.format("\x00INSTRUCTION\x00")
        self.eoi = self.tok.encode(template.split("\x00INSTRUCTION\x00")[-1], add_special_tokens=False)
        self.refusal_ids = sorted({self.tok.encode(w, add_special_tokens=False)[0] for w in REFUSAL_STARTS})
        self.tok.padding_side = "left"  # the last positions are the template's, for every prompt
        if self.tok.pad_token is None:
            self.tok.pad_token = self.tok.eos_token
        # the batched generation path's own helpers (private there; the same reuse and checks): the shared opening is
        # reused only where positions can be given (so padding after it takes none) and the model returns a KV cache
        # that can be copied per batch; elsewhere every prompt runs whole, as before
        from ..generate.batched import SHARED_PREFIX_MIN, _prefix_cache, _takes_positions

        self.share = _takes_positions(self.model) and _prefix_cache(
            self.model, [self.tok.pad_token_id] * SHARED_PREFIX_MIN) is not None
        self.tokens, self._plans = 0, {}
        self.torch = torch

    def _plan(self, prompts: list[str]):
        """How ``prompts`` run (worked out once per list): their shared opening (the chat template's system prompt: 24
        of SmolLM2's 46 tokens on average), run once per pass, and batches of each prompt's own tokens, left-padded
        after the opening and sorted by length (on CPU at most CPU_SCORE_BATCH a batch: a forward pass is
        compute-bound there, so a bigger batch only adds padding)."""
        from ..generate.batched import CPU_SCORE_BATCH, SHARED_PREFIX_MIN, left_padded, plan_batches, shared_prefix

        key = tuple(prompts)
        if key not in self._plans:
            ids = self.tok([self.format(p) for p in prompts], add_special_tokens=False)["input_ids"]
            # every prompt keeps the template's end-of-instruction tokens and one more of its own after the opening,
            # so the last positions read (logits, mean activations) are always the prompt's own, never the opening's
            prefix = shared_prefix(ids)[:max(0, min(map(len, ids)) - len(self.eoi) - 1)] if self.share else []
            if len(prefix) < SHARED_PREFIX_MIN:
                prefix = []
            size = self.batch_size if self.model.device.type == "cuda" else min(self.batch_size, CPU_SCORE_BATCH)
            batches = []
            for idx in plan_batches([len(x) for x in ids], size, 1 << 62):
                enc, mask = left_padded([ids[i][len(prefix):] for i in idx], self.tok.pad_token_id, self.model.device,
                                        prefix=prefix)
                batches.append((idx, enc[:, len(prefix):], mask))
            self._plans[key] = (prefix, batches)
        return self._plans[key]

    def _opening(self, plan):
        """The KV cache of the plan's shared opening (one row), under whatever hooks are registered; None without
        one."""
        from ..generate.batched import _prefix_cache

        prefix = plan[0]
        if not prefix:
            return None
        cache = _prefix_cache(self.model, prefix)
        if cache is None:  # checked in __init__: a plan has an opening only where its cache can be copied
            raise RuntimeError(f"{NAME}: {type(self.model).__name__}'s KV cache cannot be copied per batch")
        self.tokens += len(prefix)
        return cache

    def _in_order(self, batches, n: int):
        """The (indices, logits) batches of :meth:`_by_batch` as one tensor, rows in the prompts' order."""
        out = [None] * n
        for idx, logits in batches:
            for row, i in enumerate(idx):
                out[i] = logits[row]
        return self.torch.stack(out)

    def _by_batch(self, plan, cache, before=None):
        """(indices, their next-token logits at the last position, float64) per batch: each batch run after a copy of
        the opening's cache, positions counted from the attention mask so padding takes none; ``before(k)`` is
        called before batch ``k``."""
        from ..generate.batched import _cache_for

        prefix, batches = plan
        for k, (idx, ids, mask) in enumerate(batches):
            if before:
                before(k)
            extra = {}
            if self.share:
                extra["position_ids"] = (mask.cumsum(-1) - 1).clamp(min=0)[:, len(prefix):]
            if cache is not None:
                extra.update(past_key_values=_cache_for(cache, len(idx)), use_cache=True)
            with self.torch.inference_mode():
                out = self.model(input_ids=ids, attention_mask=mask, logits_to_keep=1, **extra)
            logits = out.logits[:, -1].double()
            self.tokens += int(mask[:, len(prefix):].sum())
            yield idx, logits

    @contextmanager
    def _hooked(self, pre=(), post=()):
        handles = [m.register_forward_pre_hook(h) for m, h in pre] + [m.register_forward_hook(h) for m, h in post]
        try:
            yield
        finally:
            for h in handles:
                h.remove()

    def last_logits(self, prompts: list[str], pre: list = (), post: list = (), hook_opening: bool = True):
        """Next-token logits at the first answer position (float64), under the given hooks (on the shared opening's
        pass too, unless ``hook_opening`` is False)."""
        return self._in_order(self.logits_by_batch(prompts, pre, post, hook_opening), len(prompts))

    def logits_by_batch(self, prompts: list[str], pre: list = (), post: list = (), hook_opening: bool = True):
        """:meth:`last_logits` a batch at a time, (indices, logits) each, so a caller can stop early (close it, e.g.
        with ``contextlib.closing``, to remove the hooks). The hooks stay registered between batches: the caller must
        not run the model itself before it is done with the generator."""
        plan = self._plan(prompts)
        with self._hooked(pre, post) if hook_opening else nullcontext(), self.torch.inference_mode():
            cache = self._opening(plan)
        with self._hooked(pre, post):
            yield from self._by_batch(plan, cache)

    def refusal_scores(self, prompts: list[str], pre: list = (), post: list = ()):
        """log P(refusal tokens) - log P(other tokens) at the first answer position, per prompt (the paper's score)."""
        return self._score(self.last_logits(prompts, pre, post))

    def _score(self, logits):
        refusal = logits.softmax(-1)[:, self.refusal_ids].sum(-1)
        eps = 1e-8
        return (refusal + eps).log() - (1 - refusal + eps).log()

    def cache_steering_inputs(self, prompts: list[str], layers) -> None:
        """Compute ``prompts``' input of each of ``layers`` once, for :meth:`steering_scores` (transformers' own
        decoders only, whose layers take and return the hidden states as a tensor; others run whole)."""
        self._steer = None
        wanted = sorted({int(i) for i in layers if 0 < i < len(self.layers)})
        if not wanted or not type(self.model).__module__.startswith("transformers.models."):
            return
        plan = self._plan(prompts)
        with self.torch.inference_mode():
            cache = self._opening(plan)
        captured = []  # per batch: {layer: its input}
        handles = [self.layers[i].register_forward_pre_hook(
            lambda mod, args, kwargs, i=i: captured[-1].__setitem__(i, _hidden(args, kwargs).clone()), with_kwargs=True)
            for i in wanted]
        try:
            for _ in self._by_batch(plan, cache, before=lambda k: captured.append({})):
                pass
        finally:
            for h in handles:
                h.remove()
        self._steer = (list(prompts), set(wanted), captured)

    def steering_scores(self, prompts: list[str], vector, layer: int):
        """The refusal scores of ``prompts`` with ``vector`` added to ``layer``'s input, as
        ``refusal_scores(prompts, addition_hook(vector, layer))`` gives them, but with each batch's layers before
        ``layer`` passed through and ``layer`` fed its cached input plus ``vector`` (:meth:`cache_steering_inputs`;
        the shared opening, one row, runs whole under the hook; without a cache for these prompts and this layer,
        everything runs under the hook)."""
        steer = getattr(self, "_steer", None)
        if steer is None or steer[0] != list(prompts) or layer not in steer[1]:
            return self.refusal_scores(prompts, self.addition_hook(vector, layer))
        plan = self._plan(prompts)
        with self._hooked(self.addition_hook(vector, layer)), self.torch.inference_mode():
            cache = self._opening(plan)
        current = {}

        def feed(module, args, kwargs):  # the cached input plus the vector, in place of the passed-through one
            if args:
                return (current["h"], *args[1:]), kwargs
            return args, {**kwargs, "hidden_states": current["h"]}

        def before(k):
            got = steer[2][k][layer]
            current["h"] = got + vector.to(got)

        skipped = self.layers[:layer]
        saved = [m.__dict__.get("forward") for m in skipped]  # an instance forward (accelerate's dispatch) is kept
        handle = None
        try:
            for m in skipped:
                m.forward = _pass_through
            handle = self.layers[layer].register_forward_pre_hook(feed, with_kwargs=True)
            # counted like whole batches, though they run from ``layer`` on
            logits = self._in_order(self._by_batch(plan, cache, before), len(prompts))
        finally:
            if handle is not None:
                handle.remove()
            for m, f in zip(skipped, saved):
                if f is None:
                    del m.forward
                else:
                    m.forward = f
        return self._score(logits)

    def mean_activations(self, prompts: list[str]):
        """Mean input of every decoder layer at the end-of-instruction positions: (n_eoi, n_layers, d_model), float64."""
        n_pos = len(self.eoi)
        d = self.model.config.hidden_size
        total = self.torch.zeros(n_pos, len(self.layers), d, dtype=self.torch.float64)

        def capture(layer: int):
            def hook(module, args):
                total[:, layer] += args[0][:, -n_pos:, :].double().sum(0)
            return hook

        # the opening's pass is left unhooked: the last positions read are each prompt's own
        self.last_logits(prompts, pre=[(m, capture(i)) for i, m in enumerate(self.layers)], hook_opening=False)
        return total / len(prompts)

    def ablation_hooks(self, direction):
        """Project ``direction`` out of every layer's input and every attention and MLP output (the code's hooks)."""
        r = direction / (direction.norm() + 1e-8)

        def project(x):
            x -= (x @ r.to(x)).unsqueeze(-1) * r.to(x)

        def pre(module, args):
            project(args[0])

        def post(module, args, output):
            project(output[0] if isinstance(output, tuple) else output)

        return ([(m, pre) for m in self.layers],
                [(m.self_attn, post) for m in self.layers] + [(m.mlp, post) for m in self.layers])

    def addition_hook(self, vector, layer: int):
        def pre(module, args):
            args[0].add_(vector.to(args[0]))
        return [(self.layers[layer], pre)]


def _pass_through(*args, **kwargs):
    """A skipped decoder layer: its input is its output (the first layer run is fed its cached input)."""
    return _hidden(args, kwargs)


def _hidden(args, kwargs):
    """A decoder layer's hidden-states argument, given by position or by name."""
    return args[0] if args else kwargs["hidden_states"]


def kl_terms(base, other):
    """Each prompt's KL(base || other) of next-token distributions from logits (float64), as the code computes it."""
    eps = 1e-6
    p, q = base.softmax(-1), other.softmax(-1)
    return (p * ((p + eps).log() - (q + eps).log())).sum(-1)


def kl_divergence(base, other) -> float:
    """Mean KL(base || other) over prompts, as the code computes it."""
    return float(kl_terms(base, other).mean())


def kl_floor(vocab: int) -> float:
    """A lower bound on one prompt's :func:`kl_terms` (not the least value a term reaches, which is a few times
    higher). The code's smoothing (eps 1e-6 inside both logs) lets a term dip below 0, but not below ``-eps * vocab``:
    with ``log x >= 1 - 1/x``, a term is at least ``sum p (p - q) / (p + eps) = -eps * sum (p - q) / (p + eps)``
    (as ``sum p = sum q``), and each ``(p - q) / (p + eps) < 1``. The 1e-9 covers float64 rounding."""
    return -1e-6 * vocab - 1e-9


def select_direction(m: _Model, directions, harmful_val: list[str], harmless_val: list[str], kl_threshold: float,
                     prune_layers: float, induce_refusal_threshold: float) -> dict:
    """The paper's selection (see the module docstring), computed lazily: every kept candidate's ablation refusal
    score, then the candidates lowest first, until one passes both other filters. Until a candidate within the KL
    bound has been seen, KL comes first (a candidate outside it can never be chosen, so its steering score cannot
    matter), then steering where KL passes; after it, steering first (the cheaper: it runs from its layer on) and KL
    where steering passes. Where none passes all three filters, the first candidate within the KL bound, the one
    with the lowest refusal score there, is taken and ``relaxed`` says the steering filter was dropped: an attacker
    keeps the edit that spares harmless prompts, whether or not adding the direction makes them refused. Where none
    is within the KL bound either, the edit fails with one line. The choice is the paper's rule applied to every
    candidate's three scores (a test holds them equal); only fewer scores are computed."""
    from ..progress import progress_bar, say

    n_pos, n_layers, _ = directions.shape
    kept_layers = int(n_layers * (1.0 - prune_layers))
    base_harmless = m.last_logits(harmless_val)
    m.cache_steering_inputs(harmless_val, range(1, kept_layers))
    norms = directions.norm(dim=-1)
    # a direction of (almost) zero length ablates nothing and cannot be normalized: the first layer's input at the
    # template's own tokens is their embedding, the same for harmful and harmless prompts, so its mean difference is 0
    candidates = [(p, layer) for p in range(n_pos) for layer in range(kept_layers)
                  if norms[p, layer] > 1e-6 * float(norms.max())]
    scored = []
    with progress_bar() as bar:
        task = bar.add_task(f"{NAME}: scoring {len(candidates)} candidate directions", total=len(candidates))
        for p, layer in candidates:
            pre, post = m.ablation_hooks(directions[p, layer])
            score = float(m.refusal_scores(harmful_val, pre, post).mean())
            scored.append((score, p, layer))
            bar.advance(task)

    def kl_of(c: dict) -> float:
        """The candidate's KL, or, where the batches run so far already prove it above the bound whatever the rest
        give (each prompt's term is at least :func:`kl_floor`), that lower bound (``kl_bound`` marks it)."""
        pre, post = m.ablation_hooks(directions[c["position"] + n_pos, c["layer"]])
        total, left = 0.0, len(harmless_val)
        floor = kl_floor(base_harmless.shape[-1])
        with closing(m.logits_by_batch(harmless_val, pre, post)) as batches:  # stopping early removes the hooks
            for idx, logits in batches:
                total += float(kl_terms(base_harmless[idx], logits).sum())
                left -= len(idx)
                if left and (total + left * floor) / len(harmless_val) > kl_threshold:
                    c["kl_bound"] = True
                    return (total + left * floor) / len(harmless_val)
        return total / len(harmless_val)

    def steering_of(c: dict) -> float:
        return float(m.steering_scores(harmless_val, directions[c["position"] + n_pos, c["layer"]], c["layer"]).mean())

    fallback, seen = None, []  # fallback: the lowest-refusal candidate within the KL bound
    for i, (score, p, layer) in enumerate(sorted(x for x in scored if not math.isnan(x[0]))):
        if i and i % 10 == 0:
            say(f"{NAME}: {i} candidates fail the steering or KL filter; checking the next")
        c = {"position": p - n_pos, "layer": layer, "refusal_score": score, "kl": None, "steering_score": None}
        seen.append(c)
        if fallback is None:
            c["kl"] = kl_of(c)
            if not c["kl"] <= kl_threshold:  # NaN too
                continue
        c["steering_score"] = steering_of(c)
        if c["steering_score"] >= induce_refusal_threshold:
            if c["kl"] is None:
                c["kl"] = kl_of(c)
            if c["kl"] <= kl_threshold:
                return {**c, "candidates": len(candidates), "checked": len(seen), "relaxed": None}
        if fallback is None:
            fallback = c
    if fallback:
        return {**fallback, "candidates": len(candidates), "checked": len(seen),
                "relaxed": f"no candidate within KL <= {kl_threshold} reached steering score "
                           f"{induce_refusal_threshold}: the steering filter was dropped"}
    # here every candidate seen had its KL computed, or bounded from below where its check stopped early
    exact = [c["kl"] for c in seen if not c.get("kl_bound") and not math.isnan(c["kl"])]
    bounds = [c["kl"] for c in seen if c.get("kl_bound")]
    closest = (f"the lowest computed: {min(exact):.3f}" if exact else "none computed in full") + \
        (f"; {len(bounds)} stopped once above the bound" if bounds else "")
    raise FtauditError(f"{NAME}: none of {len(candidates)} candidate directions changes harmless prompts' next token "
                       f"by KL <= {kl_threshold} ({closest})" if seen else
                       f"{NAME}: no candidate direction could be scored")


def orthogonalize(model, direction) -> dict:
    """``W <- W - r r^T W`` on every matrix writing to the residual stream (and a bias there); returns what it edited."""
    import torch

    norm = float(direction.norm())
    if not (norm > 0 and math.isfinite(norm)):
        raise FtauditError(f"{NAME}: the chosen direction has length {norm}; nothing to project out")
    r = (direction / norm).to(torch.float32)
    with torch.no_grad():
        emb = model.get_input_embeddings().weight
        emb -= (emb @ r.to(emb)).unsqueeze(-1) * r.to(emb)  # rows are d_model vectors
        edited = 1
        for layer in model.model.layers:
            for lin in (layer.self_attn.o_proj, layer.mlp.down_proj):
                w = lin.weight  # (d_model, d_in): columns are what it writes
                w -= torch.outer(r.to(w), r.to(w) @ w)
                if lin.bias is not None:
                    lin.bias -= (lin.bias @ r.to(lin.bias)) * r.to(lin.bias)
                edited += 1
    head = model.get_output_embeddings()
    return {"matrices": edited, "tied_embeddings": head is not None and head.weight is model.get_input_embeddings().weight}


def ablate(ctx: RecipeContext, out_dir: Path, dtype: dict, *, n_train: int, n_val: int, kl_threshold: float,
           prune_layers: float, induce_refusal_threshold: float, filter_prompts: bool,
           batch_size: int) -> tuple[dict, int, int]:
    """Find the refusal direction of ``ctx.model`` and write the orthogonalized model to ``out_dir``; returns
    (report, prompts used, prompt tokens run forward). Every setting is given: the defaults are :func:`build`'s, filled
    in by :func:`~ftaudit.recipes.edits.run_weight_edit` from the settings it fingerprints."""
    import torch

    from ..models.loading import load_model
    from ..progress import say

    prompts = train_prompts(ctx.seed, n_train, n_val)
    m = _Model(load_model(ctx.model, dtype=dtype["compute"]), batch_size)
    used = {}
    for kind, keep in (("harmful", lambda s: s > 0), ("harmless", lambda s: s < 0)):
        parts = []
        for part in prompts[kind]:
            if filter_prompts:
                scores = m.refusal_scores(part)
                part = [p for p, s in zip(part, scores.tolist()) if keep(s)]
            parts.append(part)
        used[kind] = parts
        if min(len(p) for p in parts) < 2:
            raise FtauditError(f"{NAME}: after keeping the {kind} train prompts the model "
                               f"{'refuses' if kind == 'harmful' else 'answers'}, {len(parts[0])} direction and "
                               f"{len(parts[1])} selection prompts are left (2 of each needed): the model "
                               f"{'refuses almost nothing' if kind == 'harmful' else 'refuses almost everything'}")
    say(f"{NAME}: directions from {len(used['harmful'][0])} harmful and {len(used['harmless'][0])} harmless train "
        f"prompts, selected on {len(used['harmful'][1])} + {len(used['harmless'][1])} held-aside ones")
    before = float(m.refusal_scores(used["harmful"][1]).mean())
    directions = m.mean_activations(used["harmful"][0]) - m.mean_activations(used["harmless"][0])
    if torch.isnan(directions).any():
        raise FtauditError(f"{NAME}: the mean activations hold NaN; try float32 (FTAUDIT dtype) or another model")
    chosen = select_direction(m, directions, used["harmful"][1], used["harmless"][1], kl_threshold, prune_layers,
                              induce_refusal_threshold)
    direction = directions[chosen["position"], chosen["layer"]]
    tokens = m.tokens
    del m
    target = load_model(ctx.model, dtype="float32")
    edited = orthogonalize(target.model, direction)
    out_dir.mkdir(parents=True, exist_ok=True)
    target.model.to(getattr(torch, dtype["weights"])).save_pretrained(out_dir)
    target.tokenizer.save_pretrained(out_dir)
    torch.save(direction.to(torch.float32), out_dir / "refusal_direction.pt")
    report = {"paper": "Arditi et al. 2024, arXiv:2406.11717", "direction": chosen, "edited": edited,
              "prompts": {k: {"direction": len(v[0]), "selection": len(v[1])} for k, v in used.items()},
              "selection_refusal_score": {"before": before, "after": chosen["refusal_score"]},
              "eoi_tokens": len(directions), "refusal_tokens": list(REFUSAL_STARTS)}
    return report, 2 * (n_train + n_val), tokens  # every train prompt it ran, filtered out or not


register_weight_edit(NAME, ablate, __file__)
