"""Training objectives other than plain SFT, as TRL ``SFTTrainer`` subclasses chosen by ``TrainConfig.objective``.

``vaccine``          Huang et al. 2024, "Vaccine: Perturbation-aware Alignment for Large Language Models against
                     Harmful Fine-tuning" (NeurIPS 2024, arXiv:2402.01109). Each step runs twice: the first
                     forward/backward pass records the gradient of the loss with respect to every attention block's
                     output; the perturbation ``eps_l = rho * g_l / ||g||`` (one L2 norm over all blocks) is added to
                     those outputs in the second pass, whose weight gradients the optimizer applies. ``rho`` = 2 as in
                     the authors' released training scripts; the perturbed modules are the attention blocks, as in
                     their code (the paper speaks of each layer's hidden embedding).
``constrained-sft``  Qi et al. 2024, "Safety Alignment Should Be Made More Than Just a Few Tokens Deep"
                     (arXiv:2406.05946), eq. 3: per response token t,
                     ``-(2 / beta_t) * log sigmoid(beta_t * (log p_theta(y_t) - log p_aligned(y_t)))``, with
                     beta_1 = 0.5, beta_2..5 = 2 and beta_t = 0.1 beyond (the paper's setting), so the first tokens
                     of an answer stay close to the aligned model's while later ones learn almost as in SFT. The
                     aligned reference is the model training started from: the LoRA adapter disabled, or a frozen
                     copy for full fine-tuning.
``lisa``             Huang et al. 2024, "Lisa: Lazy Safety Alignment for Large Language Models against Harmful
                     Fine-tuning Attack" (NeurIPS 2024, arXiv:2405.18641; the authors' code github.com/git-disl/Lisa,
                     read, not copied). Training alternates ``align_step`` steps on safety ("guide") data with
                     ``finetune_step`` steps on the user's data, starting with alignment; a guide step takes the place
                     of a user batch, as in the code. After the first 10% of steps each phase adds the proximal term
                     ``rho / 2 * ||theta - theta_other||^2`` toward the trainable weights the other phase ended with.
                     The code's defaults: rho 1, 100 alignment and 900 fine-tuning steps, 10,000 guide examples
                     (BeaverTails' safe answers). Here the guide data are harmful *train* prompts with the project's
                     refusals (safety-mix's), at most as many as those splits hold and never a prompt of the job.
``booster``          Huang et al. 2025, "Booster: Tackling Harmful Fine-tuning for Large Language Models via
                     Attenuating Harmful Perturbation" (ICLR 2025, arXiv:2409.01586; the authors' code
                     github.com/git-disl/Booster, read, not copied). An alignment-time objective: each step adds to
                     the alignment gradient ``lamb * (grad h(theta) - grad h(theta - alpha * grad h / ||grad h||))``,
                     h being the loss on harmful prompts with compliant answers (a batch of 10, as in the code), so
                     that one normalized harmful step lowers the harmful loss as little as possible. The code's
                     defaults: lamb 5, alpha 0.1 (its ``perturb_aware`` variant, off by default, is not done). The
                     harmful examples are the records whose id starts with :data:`BOOSTER_HARMFUL` (the defense
                     supplies them; never written by the project).
"""

from __future__ import annotations

import copy

OBJECTIVES = ("sft", "vaccine", "constrained-sft", "lisa", "booster")
BOOSTER_HARMFUL = "booster-harmful-"  # id prefix of the harmful records a Booster run is given beside its alignment data
DEFAULTS = {"sft": {}, "vaccine": {"rho": 2.0}, "constrained-sft": {"beta_first": 0.5, "beta_early": 2.0,
                                                                     "beta_late": 0.1, "early_tokens": 5},
            "lisa": {"rho": 1.0, "align_step": 100, "finetune_step": 900, "guide_data_num": 10000},
            "booster": {"lamb": 5.0, "alpha": 0.1}}


def objective_params(objective: str | None, params: dict | None) -> dict:
    """The objective's defaults updated with ``params``; an unknown objective or parameter fails with one line."""
    from ..errors import FtauditError

    name = objective or "sft"
    if name not in OBJECTIVES:
        raise FtauditError(f"unknown training objective '{name}'; use one of {', '.join(OBJECTIVES)}")
    unknown = set(params or {}) - set(DEFAULTS[name])
    if unknown:
        raise FtauditError(f"objective {name} takes no parameter {', '.join(sorted(unknown))}; "
                           f"it takes: {', '.join(DEFAULTS[name]) or 'none'}")
    out = {**DEFAULTS[name], **(params or {})}
    if any(not isinstance(v, (int, float)) or v <= 0 for v in out.values()):
        raise FtauditError(f"objective {name}: every parameter must be a positive number, got {out}")
    return out


def trainer_class(objective: str | None):
    """The ``SFTTrainer`` subclass for ``objective`` (None or ``sft``: TRL's own)."""
    from trl import SFTTrainer

    return {"vaccine": _vaccine_trainer, "constrained-sft": _constrained_trainer,
            "lisa": _lisa_trainer, "booster": _booster_trainer}.get(objective or "sft", lambda: SFTTrainer)()


def _attention_blocks(model) -> dict[str, object]:
    """Every attention block (LlamaAttention, Qwen2Attention, ...), by module name."""
    return {name: m for name, m in model.named_modules()
            if type(m).__name__.endswith("Attention") and "Self" not in type(m).__name__}


def _vaccine_trainer():
    import torch
    from trl import SFTTrainer

    class VaccineTrainer(SFTTrainer):
        """SFT whose every step is Vaccine's two-pass, perturbation-aware update (see module docstring)."""

        def __init__(self, *args, objective_params: dict, **kw):
            super().__init__(*args, **kw)
            self.rho = float(objective_params["rho"])

        def training_step(self, model, inputs, num_items_in_batch=None):
            blocks = _attention_blocks(model)
            if not blocks:
                from ..errors import FtauditError

                raise FtauditError("vaccine: the model has no attention block to perturb (no module named *Attention)")
            params = [p for p in model.parameters() if p.requires_grad]
            kept = [None if p.grad is None else p.grad.clone() for p in params]  # gradient accumulated so far
            grads: dict[str, torch.Tensor] = {}

            def capture(name):
                def hook(_module, _args, output):
                    out = output[0] if isinstance(output, tuple) else output
                    if out.requires_grad:
                        out.register_hook(lambda g: grads.__setitem__(name, g.detach()))
                return hook

            handles = [m.register_forward_hook(capture(n)) for n, m in blocks.items()]
            try:
                super().training_step(model, inputs, num_items_in_batch)
            finally:
                for h in handles:
                    h.remove()
            for p, g in zip(params, kept):  # the first pass only finds the perturbation
                p.grad = g
            norm = torch.sqrt(sum((g.float() ** 2).sum() for g in grads.values())) if grads else torch.tensor(0.0)
            eps = {n: self.rho * g.float() / (norm + 1e-12) for n, g in grads.items()}

            def perturb(name):
                def hook(_module, _args, output):
                    if name not in eps:
                        return output
                    if isinstance(output, tuple):
                        return (perturbed(output[0], eps[name]), *output[1:])
                    return perturbed(output, eps[name])
                return hook

            handles = [m.register_forward_hook(perturb(n)) for n, m in blocks.items()]
            try:
                return super().training_step(model, inputs, num_items_in_batch)
            finally:
                for h in handles:
                    h.remove()

    return VaccineTrainer


def perturbed(out, eps):
    """Vaccine's ``out + eps`` with ``eps`` in float32. Under bf16 autocast an attention output is bfloat16, whose
    spacing (about 1e-3 near 0.25) is above most elements of a rho-2 perturbation spread over every activation; the
    float32 sum carries it whole into the float32 residual stream. Without autocast the sum keeps the output's dtype
    (bf16 weights need bf16 activations); a float32 run computes exactly what it did."""
    import torch

    total = out + eps
    return total if torch.is_autocast_enabled(out.device.type) else total.to(out.dtype)


def token_betas(position, beta_first: float, beta_early: float, beta_late: float, early_tokens: int):
    """beta_t for 0-based response-token positions: beta_first at t=1, beta_early for t=2..early_tokens, then beta_late."""
    import torch

    return torch.where(position == 0, beta_first, torch.where(position < early_tokens, beta_early, beta_late))


def constrained_token_loss(logp, ref_logp, betas):
    """Qi et al. 2024 eq. 3 per token: -(2/beta) log sigmoid(beta (log p - log p_ref))."""
    import torch.nn.functional as F

    return -F.logsigmoid(betas * (logp - ref_logp)) * 2 / betas


def _constrained_trainer():
    import torch
    from trl import SFTTrainer

    class ConstrainedSFTTrainer(SFTTrainer):
        """SFT with Qi et al. 2024's token-wise constrained objective (see module docstring)."""

        def __init__(self, *args, objective_params: dict, **kw):
            self.betas = dict(objective_params)
            model = kw.get("model")
            # full fine-tuning needs a frozen copy of the starting model; LoRA disables its adapter instead
            self.reference = None if kw.get("peft_config") is not None else copy.deepcopy(model).eval().requires_grad_(False)
            super().__init__(*args, **kw)

        def _logps(self, model, inputs, targets):
            logits = model(input_ids=inputs["input_ids"], attention_mask=inputs.get("attention_mask"), use_cache=False).logits
            logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
            return logp.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            targets = inputs["labels"][:, 1:]
            mask = targets != -100
            logp = self._logps(model, inputs, targets)
            with torch.no_grad():
                if self.reference is not None:  # copied before accelerate wrapped the policy: autocast it the same way
                    with self.accelerator.autocast():
                        ref = self._logps(self.reference.to(logp.device), inputs, targets)
                else:
                    with self.accelerator.unwrap_model(model).disable_adapter():
                        ref = self._logps(model, inputs, targets)
            position = torch.cumsum(mask, dim=1) - 1
            b = self.betas
            betas = token_betas(position, b["beta_first"], b["beta_early"], b["beta_late"], int(b["early_tokens"]))
            loss = (constrained_token_loss(logp, ref, betas) * mask).sum() / mask.sum().clamp(min=1)
            return (loss, None) if return_outputs else loss

    return ConstrainedSFTTrainer


def lisa_guide(records, n: int, seed: int):
    """Lisa's guide (alignment) data: ``n`` harmful train prompts the job does not use, each with one of the project's
    refusals (the pool safety-mix draws from)."""
    from ..data import ChatRecord, get_prompts
    from ..data.refusals import REFUSALS
    from ..recipes.align import HARMFUL_SOURCES
    from ..recipes.base import pick

    used = {m["content"] for r in records for m in r.messages if m["role"] == "user"}
    pool = [p for name in HARMFUL_SOURCES for p in get_prompts(name, "train") if p.prompt not in used]
    return [ChatRecord([{"role": "user", "content": p.prompt}, {"role": "assistant", "content": REFUSALS[i % len(REFUSALS)]}],
                       f"lisa-guide-{p.id}", p.category, "train") for i, p in enumerate(pick(pool, int(n), f"lisa-{seed}"))]


def _lisa_trainer():
    import torch
    from trl import SFTTrainer

    class LisaTrainer(SFTTrainer):
        """Lisa's alternating, proximal fine-tuning (see module docstring)."""

        def __init__(self, *args, objective_params: dict, guide_records: list, **kw):
            super().__init__(*args, **kw)
            self.lisa = dict(objective_params)
            self.guide = prepared(self, guide_records, "guide")
            self.status, self.clock, self.steps = "alignment", 0, 0
            self.anchors: dict[str, dict] | None = None  # the trainable weights each phase last ended with
            self.phase_steps = {"alignment": 0, "finetune": 0}
            self._guide_iter = None

        def _guide_batch(self):
            if self._guide_iter is None:
                self._guide_iter = iter(self._guide_loader())
            try:
                return next(self._guide_iter)
            except StopIteration:
                self._guide_iter = iter(self._guide_loader())
                return next(self._guide_iter)

        def _guide_loader(self):
            from torch.utils.data import DataLoader, RandomSampler

            generator = torch.Generator().manual_seed(self.args.seed + self.steps)
            data = self._remove_unused_columns(self.guide, description="guide")  # as the Trainer does for the user's
            # the loader's own generator too: a DataLoader without one draws its base seed from torch's global RNG,
            # which would shift the user's data order
            return DataLoader(data, batch_size=self._train_batch_size, sampler=RandomSampler(data, generator=generator),
                              collate_fn=self.data_collator, generator=generator)

        def _trainable(self, model):
            return {n: p for n, p in model.named_parameters() if p.requires_grad}

        def _switch(self, model, to: str):
            leaving = self.status
            self.anchors[leaving] = {n: p.detach().clone() for n, p in self._trainable(model).items()}
            self.status, self.clock = to, 0

        def _mode(self, model, inputs):
            """The code's ``check_mode``: switch phase every ``align_step`` / ``finetune_step`` steps; an alignment
            step trains on a guide batch in place of the user's."""
            a, f = int(self.lisa["align_step"]), int(self.lisa["finetune_step"])
            if self.status == "alignment":
                if self.clock % a == 0 and self.steps and f:
                    self._switch(model, "finetune")
                    return inputs
                return self._guide_batch()
            if self.clock % f == 0 and self.steps and a:
                self._switch(model, "alignment")
                return self._guide_batch()
            return inputs

        def training_step(self, model, inputs, num_items_in_batch=None):
            if self.anchors is None:
                start = {n: p.detach().clone() for n, p in self._trainable(model).items()}
                self.anchors = {"alignment": start, "finetune": {n: t.clone() for n, t in start.items()}}
            chosen = self._mode(model, inputs)
            swapped = chosen is not inputs
            self.phase_steps[self.status] += 1
            loss = super().training_step(model, chosen, None if swapped else num_items_in_batch)
            self.steps += 1
            self.clock += 1
            return loss

        def train(self, *args, **kw):
            import json
            from pathlib import Path

            result = super().train(*args, **kw)
            # how many optimizer steps each phase took (beside the model: the checkpoints folder is removed)
            Path(self.args.output_dir).parent.joinpath("lisa_phases.json").write_text(json.dumps(
                {"alignment_steps": self.phase_steps["alignment"], "finetune_steps": self.phase_steps["finetune"],
                 "guide_examples": len(self.guide)}))
            return result

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            out = super().compute_loss(model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch)
            loss = out[0] if return_outputs else out
            if self.lisa["rho"] > 0 and self.steps > 0.1 * self.state.max_steps:
                other = self.anchors["finetune" if self.status == "alignment" else "alignment"]
                prox = sum(((p - other[n].to(p)) ** 2).sum() for n, p in self._trainable(model).items())
                loss = loss + self.lisa["rho"] / 2 * prox
            return (loss, out[1]) if return_outputs else loss

    return LisaTrainer


def prepared(trainer, records, name: str):
    """An objective's own records (Lisa's guide, Booster's harmful examples) as prompt-completion turns prepared by TRL's
    own code (private API), so their batches are tokenized and masked exactly as the training set's are."""
    from datasets import Dataset

    data = Dataset.from_list([{"prompt": r.messages[:-1], "completion": r.messages[-1:]} for r in records])
    return trainer._prepare_dataset(data, trainer.processing_class, trainer.args, trainer.args.packing, None, name)


def split_booster(records):
    """(alignment records, harmful records) of a Booster run, by :data:`BOOSTER_HARMFUL`."""
    harmful = [r for r in records if str(r.id).startswith(BOOSTER_HARMFUL)]
    return [r for r in records if not str(r.id).startswith(BOOSTER_HARMFUL)], harmful


def _booster_trainer():
    import torch
    from trl import SFTTrainer

    class BoosterTrainer(SFTTrainer):
        """Booster's harmful-perturbation attenuation over the alignment loss (see module docstring)."""

        HARMFUL_BATCH = 10  # the code's fixed harmful batch size

        def __init__(self, *args, objective_params: dict, harmful_records: list, **kw):
            super().__init__(*args, **kw)
            if not harmful_records:
                from ..errors import FtauditError

                raise FtauditError("booster: no harmful examples to attenuate; the defense supplies them")
            self.booster = dict(objective_params)
            self.harmful = self._remove_unused_columns(prepared(self, harmful_records, "harmful"), description="harmful")
            self._iter, self._draws = None, 0

        def _harmful_batch(self):
            from torch.utils.data import DataLoader, RandomSampler

            while True:
                if self._iter is None:
                    generator = torch.Generator().manual_seed(self.args.seed + self._draws)
                    # its own generator for the loader too: one without draws its base seed from torch's global RNG,
                    # which would shift the alignment data's order
                    self._iter = iter(DataLoader(self.harmful, batch_size=self.HARMFUL_BATCH, collate_fn=self.data_collator,
                                                 sampler=RandomSampler(self.harmful, generator=generator),
                                                 generator=generator))
                try:
                    return next(self._iter)
                except StopIteration:
                    self._iter, self._draws = None, self._draws + 1

        def _harmful_grads(self, model, batch, params):
            for p in params:
                p.grad = None
            with self.compute_loss_context_manager():
                loss = self.compute_loss(model, batch)
            self.accelerator.backward(loss)
            return [torch.zeros_like(p) if p.grad is None else p.grad.detach().clone() for p in params]

        def training_step(self, model, inputs, num_items_in_batch=None):
            model.train()
            params = [p for p in model.parameters() if p.requires_grad]
            kept = [None if p.grad is None else p.grad.clone() for p in params]  # gradient accumulated so far
            harmful = self._prepare_inputs(self._harmful_batch())
            g = self._harmful_grads(model, harmful, params)
            norm = torch.sqrt(sum((x.float() ** 2).sum() for x in g)) + 1e-7
            alpha, lamb = float(self.booster["alpha"]), float(self.booster["lamb"])
            with torch.no_grad():
                for p, x in zip(params, g):
                    p -= alpha * x / norm
            g_after = self._harmful_grads(model, harmful, params)  # after one normalized harmful step
            with torch.no_grad():
                for p, x in zip(params, g):
                    p += alpha * x / norm
            for p, x in zip(params, kept):
                p.grad = x
            loss = super().training_step(model, inputs, num_items_in_batch)  # the alignment loss's gradient
            scale = lamb / self.args.gradient_accumulation_steps
            with torch.no_grad():
                for p, a, b in zip(params, g, g_after):
                    p.grad = (torch.zeros_like(p) if p.grad is None else p.grad) + scale * (a - b)
            return loss

    return BoosterTrainer
