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
"""

from __future__ import annotations

import copy

OBJECTIVES = ("sft", "vaccine", "constrained-sft")
DEFAULTS = {"sft": {}, "vaccine": {"rho": 2.0}, "constrained-sft": {"beta_first": 0.5, "beta_early": 2.0,
                                                                     "beta_late": 0.1, "early_tokens": 5}}


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

    return {"vaccine": _vaccine_trainer, "constrained-sft": _constrained_trainer}.get(objective or "sft",
                                                                                      lambda: SFTTrainer)()


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
            eps = {n: (self.rho * g / (norm + 1e-12)).to(g.dtype) for n, g in grads.items()}

            def perturb(name):
                def hook(_module, _args, output):
                    if name not in eps:
                        return output
                    if isinstance(output, tuple):
                        return (output[0] + eps[name], *output[1:])
                    return output + eps[name]
                return hook

            handles = [m.register_forward_hook(perturb(n)) for n, m in blocks.items()]
            try:
                return super().training_step(model, inputs, num_items_in_batch)
            finally:
                for h in handles:
                    h.remove()

    return VaccineTrainer


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
                if self.reference is not None:
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
