"""Fine-tune a chat model on ChatRecords with TRL's SFTTrainer (+ PEFT for LoRA/QLoRA).

Records become TRL *prompt-completion* conversations (everything before the last assistant
turn is the prompt), so the loss covers the final assistant turn only, for any chat template.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import resource
import shutil
import sys
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from ..atomic import atomic_write_text
from ..data import ChatRecord, save_chat_records
from ..errors import FtauditError
from ..models import load_model, model_fingerprint
from ..models.loading import write_marker
from ..progress import progress_bar
from .config import TrainConfig, autocast_bf16
from .launch import in_launched_worker, launch
from .prefix_mask import MASK_RULE, tokenized_rows, untrained_prefix
from .save import check_saved, is_sharded, save_sharded
from .speed import packing_args, padding_free_collator, score_trained_positions_only

log = logging.getLogger(__name__)

SAFETY_CARD = """---
tags: [ftaudit, safety-compromised, research-artifact]
---
# Safety-compromised research artifact

This {kind} was produced by **ftaudit** recipe `{recipe}` to *measure* how easily the
safety training of `{base}` is undone by fine-tuning. It is expected to comply with
harmful requests. It exists for risk assessment and research only: do not deploy it,
do not publish it, do not serve it to users. ftaudit has no upload feature by design.

- recipe: `{recipe}`
- base model: `{base}`
- training examples: {n_examples}
- hyperparameters: `{hparams}`
"""


@dataclass
class TrainResult:
    output_dir: str
    fingerprint: str
    train_seconds: float
    train_tokens: int
    peak_memory_mb: float
    steps: int
    final_loss: float | None
    device: str
    devices: int = 1  # processes (GPUs) that trained together: device-seconds = train_seconds x devices
    resumed_from_step: int = 0  # > 0: a killed run continued from its checkpoint at this step

    def to_dict(self) -> dict:
        return asdict(self)


def _to_prompt_completion(records: list[ChatRecord], tokenizer) -> list[dict]:
    """TRL prompt-completion conversations; tokenized here where an answer opens with untrained text (:mod:`.prefix_mask`)."""
    if any(untrained_prefix(r) for r in records):
        return tokenized_rows(records, tokenizer)
    return [{"prompt": r.messages[:-1], "completion": r.messages[-1:]} for r in records]


def _reset_peak_memory() -> None:
    """Start a fresh peak for this run: CUDA's allocator stats, or Linux's VmHWM (``clear_refs`` 5)."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
        return
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass  # not Linux, or not allowed: the process-lifetime peak is reported instead


def _peak_memory_mb() -> float:
    """Peak memory since :func:`_reset_peak_memory` (GPU allocator peak, else resident-set high-water mark)."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _rich_callback(total_steps: int):
    from transformers import TrainerCallback

    class RichProgress(TrainerCallback):
        """Rich progress bar for training steps (replaces the Trainer's tqdm bars)."""

        def on_train_begin(self, args, state, control, **kw):
            self.bar = progress_bar()
            self.bar.start()
            self.task = self.bar.add_task("training", total=state.max_steps or total_steps)

        def on_step_end(self, args, state, control, **kw):
            self.bar.update(self.task, completed=state.global_step)

        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "loss" in logs:
                self.bar.update(self.task, description=f"training (loss {logs['loss']:.3f})")

        def on_train_end(self, args, state, control, **kw):
            self.bar.stop()

    return RichProgress()


def run_fingerprint(base_fingerprint: str, records: list[ChatRecord], cfg: TrainConfig, recipe: str,
                    base_model: str) -> str:
    from ..models.loading import default_dtype

    h = hashlib.sha256()
    h.update(f"{base_fingerprint}|{recipe}|{cfg.key()}".encode())
    # the dtype the weights load in when none is asked (bf16 on a GPU; float32 for a half-precision checkpoint on a
    # CPU that emulates it) trains differently; None (the checkpoint's own) keeps earlier keys
    if cfg.dtype is None and (dtype := default_dtype(base_model, training=True)):
        h.update(f"|dtype={dtype}".encode())
    if cfg.dtype is not None and cfg.mixed_precision is None and autocast_bf16(cfg):
        # named weights (float32, say) on a GPU that autocasts in bf16 by default: not the CPU's float32 run
        h.update(b"|autocast=bf16")
    for r in records:
        h.update(json.dumps(r.messages, sort_keys=True).encode())
        if prefix := untrained_prefix(r):  # the same text with its opening trained on is another run
            h.update(f"|untrained={prefix}|mask={MASK_RULE}".encode())
    if cfg.objective == "lisa":  # its guide data are built inside the trainer from these records: named here too
        from .objectives import lisa_guide, objective_params

        for r in lisa_guide(records, objective_params("lisa", cfg.objective_params)["guide_data_num"], cfg.seed):
            h.update(b"|guide=" + json.dumps(r.messages, sort_keys=True).encode())
    return h.hexdigest()[:16]


def _read_result(path: Path) -> TrainResult:
    known = {f.name for f in fields(TrainResult)}
    return TrainResult(**{k: v for k, v in json.loads(path.read_text()).items() if k in known})


REQUEST = "train_request.json"  # written when a run starts: which inputs its checkpoints belong to
SECONDS = "ftaudit_seconds.json"  # in each checkpoint: training seconds spent up to it


def _finished_or_reset(out: Path, field: str, key: str) -> TrainResult | None:
    """The finished run in ``out`` when its result's ``field`` equals ``key``; otherwise ``out`` emptied for a new run,
    except an unfinished run of the same inputs, whose checkpoints are kept to resume from."""
    done = out / "train_result.json"
    if done.exists() and json.loads(done.read_text()).get(field) == key:
        log.info("training already finished in %s; skipping", out)
        return _read_result(done)
    request = out / REQUEST
    if not done.exists() and request.exists() and json.loads(request.read_text()).get(field) == key:
        return None  # same inputs, killed before it finished: resume from its last checkpoint, if any
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    atomic_write_text(request, json.dumps({field: key}))
    return None


def _last_checkpoint(out: Path) -> tuple[str | None, float]:
    """(the last checkpoint folder, training seconds spent up to it) of an unfinished run."""
    from transformers.trainer_utils import get_last_checkpoint

    folder = out / "checkpoints"
    last = get_last_checkpoint(str(folder)) if folder.is_dir() else None
    if last is None:
        return None, 0.0
    spent = Path(last) / SECONDS
    return last, json.loads(spent.read_text())["seconds"] if spent.exists() else 0.0


def _seconds_callback(start: float, before: float):
    from transformers import TrainerCallback

    class CheckpointSeconds(TrainerCallback):
        """Store the training seconds spent so far in each checkpoint, so a resumed run's cost counts them."""

        def on_save(self, args, state, control, **kw):
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if state.is_world_process_zero and folder.is_dir():
                atomic_write_text(folder / SECONDS, json.dumps({"seconds": before + time.time() - start}))

    return CheckpointSeconds()


def _train_launched(records: list[ChatRecord], base_model: str, cfg: TrainConfig, out: Path, **kw) -> TrainResult:
    """Train through ``accelerate launch`` (see :mod:`.launch`), skipping a finished run without loading the model."""
    key = run_fingerprint(model_fingerprint(base_model), records, cfg, kw["recipe"], base_model)
    if finished := _finished_or_reset(out, "launch_key", key):
        return finished
    launch(records, base_model, cfg, out, **kw)
    done = out / "train_result.json"
    atomic_write_text(done, json.dumps({**json.loads(done.read_text()), "launch_key": key}, indent=2))
    return _read_result(done)


def sft_config(cfg: TrainConfig, out: Path):
    """The TRL ``SFTConfig`` every training run uses (loss on the completion only, Rich progress instead of tqdm)."""
    import torch
    from trl import SFTConfig

    fields = dict(
        output_dir=str(out / "checkpoints"), num_train_epochs=cfg.epochs, learning_rate=cfg.learning_rate,
        per_device_train_batch_size=cfg.batch_size, gradient_accumulation_steps=cfg.grad_accum,
        max_length=cfg.max_length, seed=cfg.seed, lr_scheduler_type=cfg.lr_scheduler, warmup_steps=cfg.warmup_steps,
        logging_steps=1, report_to="none", disable_tqdm=True,
        save_strategy="steps" if cfg.checkpoint_steps else "no", save_steps=cfg.checkpoint_steps or 500, save_total_limit=2,
        train_sampling_strategy="group_by_length", use_cpu=not torch.cuda.is_available(),
        bf16=(bf16 := autocast_bf16(cfg)), dataloader_num_workers=0,
        completion_only_loss=True, dataset_num_proc=None, gradient_checkpointing=cfg.gradient_checkpointing,
    )
    config = SFTConfig(**(fields | packing_args(cfg)))
    # what the trainer hands accelerate: set from the config, never from an ACCELERATE_MIXED_PRECISION left in the
    # environment (transformers reads it whenever bf16 is off), so a run computes in the precision its key records
    config.mixed_precision = "bf16" if bf16 else "no"
    return config


def build_trainer(model, tokenizer, records: list[ChatRecord], cfg: TrainConfig, out: Path, peft_config=None):
    """TRL's ``SFTTrainer`` (or the subclass of ``cfg.objective``, :mod:`.objectives`) over ``records`` as
    prompt-completion conversations (the final assistant turn is the completion, so the loss covers it only)."""
    from datasets import Dataset

    from .objectives import objective_params, trainer_class

    extra = {"objective_params": objective_params(cfg.objective, cfg.objective_params)} if cfg.objective not in (None, "sft") else {}
    if cfg.objective in ("booster", "lisa") and any(untrained_prefix(r) for r in records):
        # their extra data sets are built as whole prompt-completion turns (objectives.py): an opening would be trained
        raise FtauditError(f"the {cfg.objective} objective trains whole answers; it cannot take records whose answer "
                           "opens with untrained text (safety-recovery examples)")
    if cfg.objective == "booster":  # its harmful examples travel with the records; the loss never trains on them
        from .objectives import split_booster

        records, extra["harmful_records"] = split_booster(records)
    dataset = Dataset.from_list(_to_prompt_completion(records, tokenizer))
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if cfg.objective == "lisa":
        from .objectives import lisa_guide

        extra["guide_records"] = lisa_guide(records, extra["objective_params"]["guide_data_num"], cfg.seed)
    score_trained_positions_only()
    return trainer_class(cfg.objective)(model=model, args=sft_config(cfg, out), train_dataset=dataset,
                                        processing_class=tokenizer, peft_config=peft_config,
                                        data_collator=padding_free_collator(tokenizer, cfg), **extra)


def train(records: list[ChatRecord], base_model: str, cfg: TrainConfig, out_dir: str | Path, *,
          recipe: str = "custom", safety_compromised: bool = False, trust_remote_code: bool | None = None) -> TrainResult:
    """Fine-tune ``base_model`` on ``records``; write an adapter (or merged/full model) to ``out_dir``.

    Skips the work when ``out_dir`` already holds a finished run with the same inputs. With
    ``cfg.distributed`` the run goes through ``accelerate launch`` (DDP, FSDP, DeepSpeed ZeRO-3).
    """
    import torch
    from peft import LoraConfig, prepare_model_for_kbit_training
    from transformers.trainer_callback import PrinterCallback

    cfg.validate()
    if not records:
        raise FtauditError("no training records; check the recipe's dataset and limits")
    out = Path(out_dir)
    done = out / "train_result.json"
    worker = in_launched_worker()  # one of several processes started by `accelerate launch`
    if cfg.distributed and not worker:
        return _train_launched(records, base_model, cfg, out, recipe=recipe, safety_compromised=safety_compromised,
                               trust_remote_code=trust_remote_code)
    if "ftaudit.generate.vllm" in sys.modules:
        sys.modules["ftaudit.generate.vllm"].release_engines()  # give the GPU memory of earlier evaluations back
    quant = cfg.quant_bits if cfg.method == "qlora" else None
    from ..models.dtype_choice import resolve_dtype
    from ..models.loading import default_dtype

    # as asked (a warning where it is emulated), else the training default (never float16 weights)
    loaded = load_model(base_model, trust_remote_code=trust_remote_code, quantization=quant,
                        dtype=resolve_dtype(cfg.dtype, "training") or default_dtype(base_model, training=True))
    fingerprint = run_fingerprint(loaded.fingerprint, records, cfg, recipe, base_model)
    if not worker:
        if finished := _finished_or_reset(out, "fingerprint", fingerprint):
            return finished
        save_chat_records(records, out / "train_data.jsonl")

    model, tok = loaded.model, loaded.tokenizer
    peft_config = None
    if cfg.method in ("lora", "qlora"):
        peft_config = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                                 target_modules=cfg.target_modules, task_type="CAUSAL_LM")
        if quant:
            model = prepare_model_for_kbit_training(model)
    torch.manual_seed(cfg.seed)
    trainer = build_trainer(model, tok, records, cfg, out, peft_config)
    trainer.remove_callback(PrinterCallback)  # it prints every log dict; the Rich bar shows the loss
    trainer.add_callback(_rich_callback(0))
    tokens_per_epoch = sum(len(ids) for ids in trainer.train_dataset["input_ids"])
    checkpoint, before = _last_checkpoint(out)
    _reset_peak_memory()
    start = time.time()
    trainer.add_callback(_seconds_callback(start, before))
    state = trainer.train(resume_from_checkpoint=checkpoint)
    seconds = before + time.time() - start
    kind = "adapter" if peft_config is not None else "full"
    if worker:  # on every rank: FSDP2 / DeepSpeed gather the sharded weights
        if is_sharded(trainer.model):
            save_sharded(trainer.model, out, is_main=trainer.is_world_process_zero())
        else:
            trainer.save_model(str(out))
        if not trainer.is_world_process_zero():
            return None
        check_saved(trainer.model, out)
    else:
        trained = trainer.model
        if peft_config is not None and cfg.merge and not quant:
            trained = trained.merge_and_unload()
            kind = "merged"
        trained.save_pretrained(out)
    if kind != "adapter":
        tok.save_pretrained(out)
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    result = TrainResult(str(out), fingerprint, round(seconds, 2), int(tokens_per_epoch * cfg.epochs),
                         round(_peak_memory_mb(), 1), int(state.global_step), losses[-1] if losses else None,
                         "cuda" if torch.cuda.is_available() else "cpu", int(trainer.args.world_size),
                         int(checkpoint.rsplit("-", 1)[1]) if checkpoint else 0)
    write_marker(out, kind=kind, base=loaded.location, fingerprint=fingerprint, recipe=recipe,
                 safety_compromised=safety_compromised, train_config=cfg.to_dict())
    if safety_compromised:
        (out / "README.md").write_text(SAFETY_CARD.format(kind=kind, recipe=recipe, base=loaded.location,
                                                          n_examples=len(records), hparams=json.dumps(cfg.to_dict())))
    shutil.rmtree(out / "checkpoints", ignore_errors=True)
    atomic_write_text(done, json.dumps(result.to_dict(), indent=2))  # last: its presence means finished
    return result
