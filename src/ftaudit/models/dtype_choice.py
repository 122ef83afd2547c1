"""Which compute dtype is fast on this machine: bfloat16 only where the processor runs it natively.

A default tuned on one processor can make the tool twenty times slower on another: on a CPU with AVX512-BF16 or
AMX a bfloat16 matrix product is about 2x faster than float32, while on an AVX2-only CPU (most laptops, many cloud
CPUs) torch emulates bfloat16 and the same product is about 20x slower. So where ftaudit picks a dtype for the user
("auto"), it asks what this machine does:

* on a CUDA GPU, bfloat16 where ``torch.cuda.is_bf16_supported(including_emulation=False)``;
* on a CPU without a bfloat16 feature (AVX512-BF16 or AMX, as torch reports them), never native;
* on a CPU with one, a measured comparison of float32, bfloat16 and float16 matrix products (``torch.utils.benchmark``),
  the truth that the flags alone cannot give: torch reports AVX512-BF16 from the hardware even when
  ``ATEN_CPU_CAPABILITY=avx2`` or ``ONEDNN_MAX_CPU_ISA=AVX2`` make its kernels emulate it. One thread is timed (whether
  a core runs bf16 natively does not depend on how many there are, and one thread cannot stall at a barrier waiting
  for a partner another process preempted), and each dtype's fastest reading is kept (load only ever slows a
  reading). A clear answer is cached per machine (see :func:`machine_key`) under the cache folder; an unclear one
  (a ratio near 1, or float32's two fastest readings more than 25% apart) decides float32 for this process only and
  is measured again by the next.

The resolved dtype, never "auto", is what a result's identity records. A dtype the user names is always honoured;
a half-precision one that this processor emulates gets one warning line.
"""

from __future__ import annotations

import json
import os
import platform
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import lru_cache

AUTO = "auto"
DTYPES = (None, AUTO, "float32", "bfloat16", "float16")
# the probe: a 64-row batch through a slice of a 0.5B model's MLP (hidden 896); small enough that an emulated
# bfloat16 product takes a fraction of a second (bench/throughput.py measures the whole 896 x 4864 projection)
PROBE_SHAPE = (64, 896, 1024)
# what decides: bfloat16 at least KEEP_ABOVE x float32's rate, read clearly, is native (measured: native ~2-3x,
# emulated ~0.02-0.1x); anything else is read as not native (float32: never the slow side). Only a clear reading is
# kept: at least KEEP_ABOVE or at most KEEP_BELOW, with float32's two fastest rounds within AGREE of each other.
# float16 on a CPU is worth it only at NATIVE_AT x float32's rate or more
NATIVE_AT = 1.2
KEEP_ABOVE, KEEP_BELOW, AGREE = 1.5, 0.8, 1.25
PINNED = "FTAUDIT_BF16_CHECK"  # a run's starting process hands its answer to its workers through the environment
ROUNDS = 3  # float32 and the half precisions timed in turn, ROUNDS times; each dtype's fastest reading decides
SCHEMA = 4  # bump when the cached record changes: an older record is measured again, never misread
# what can change the kernels torch and oneDNN pick: any of them set differently measures again
ISA_VARIABLES = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS", "MKL_DEBUG_CPU_TYPE")


@dataclass(frozen=True)
class Bf16Check:
    """What this machine does with bfloat16, and why ftaudit says so."""

    native: bool
    device: str  # "cuda" or "cpu"
    capability: str  # torch's kernel capability (AVX2, AVX512, ...) or the GPU's name
    flags: str  # the processor's bf16 features as torch reports them
    float32_gflops: float | None = None
    bfloat16_gflops: float | None = None
    float16_gflops: float | None = None
    clear: bool = True  # False: an unclear reading, used by this process only (never cached)

    def slow(self, dtype: str) -> bool:
        """Whether ``dtype`` is not worth it here: bfloat16 wherever it is not native (the same line "auto" draws,
        so the two never disagree), float16 on a CPU where it runs under NATIVE_AT x float32's rate."""
        if dtype == "bfloat16":
            return not self.native
        if self.device == "cuda" or dtype != "float16":
            return False
        return self.float16_gflops < NATIVE_AT * self.float32_gflops

    def reason(self, dtype: str = "bfloat16") -> str:
        if self.device == "cuda":
            return f"{self.capability} {'supports' if self.native else 'does not support'} bfloat16"
        rate = {"bfloat16": self.bfloat16_gflops, "float16": self.float16_gflops}[dtype]
        return (f"{dtype} matrix products run at {rate / self.float32_gflops:.2g}x float32's on this CPU "
                f"({rate:.1f} vs {self.float32_gflops:.1f} GFLOP/s on one thread; kernels {self.capability}, "
                f"{self.flags or 'no native bf16 feature reported'}"
                f"{'' if self.clear else '; an unclear reading, measured again next run'})")


def matmul_gflops(dtype: str, shape: tuple[int, int, int] = PROBE_SHAPE, min_seconds: float = 0.3,
                  threads: int = 1) -> float:
    """GFLOP/s of one ``m x k`` by ``k x n`` matrix product in ``dtype`` on this CPU, on ``threads`` threads, timed by
    torch's own benchmark utility (warm-up and repeats handled there); the fastest block is the reading, since load
    can only slow one."""
    import torch
    from torch.utils.benchmark import Timer

    m, k, n = shape
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(m, k, generator=gen).to(getattr(torch, dtype))
    b = torch.randn(k, n, generator=gen).to(getattr(torch, dtype))
    seconds = min(Timer("a @ b", globals={"a": a, "b": b}, num_threads=threads).blocked_autorange(
        min_run_time=min_seconds).times)
    return 2 * m * k * n / seconds / 1e9


def cpu_flags() -> str:
    import torch

    cpu = torch.cpu
    found = [name for name, probe in (("avx512_bf16", "_is_avx512_bf16_supported"), ("amx", "_is_amx_tile_supported"))
             if getattr(cpu, probe, lambda: False)()]
    return ", ".join(found)


def machine_key() -> str:
    """What the CPU measurement depends on (the processor's name and bf16 features, torch and its kernel capability,
    oneDNN, the variables that cap the instruction set); a change in any of these measures again. Not the thread count:
    the probe times one thread, so a Ray worker or an ``accelerate`` process on the same machine reads the same answer
    as the process that started it."""
    import torch

    return json.dumps({"schema": SCHEMA, "cpu": cpu_name(), "flags": cpu_flags(), "torch": torch.__version__,
                       "capability": torch.backends.cpu.get_cpu_capability(),
                       "mkldnn": torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled,
                       **{k: os.environ.get(k) for k in ISA_VARIABLES}}, sort_keys=True)


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), platform.processor())
    except OSError:
        return platform.processor() or platform.machine()


def check_file():
    """Where the measurements are kept, one per machine key: delete it to measure again."""
    from ..wheels import cache_dir

    return cache_dir() / "machine" / "bf16-check.json"


def measure() -> Bf16Check:
    """Time float32, bfloat16 and float16 in turn, :data:`ROUNDS` times, and decide from each dtype's fastest
    reading. A processor with no bf16 feature is never native, whatever the timings; the answer is clear (worth
    keeping) only when the ratio is far from 1 and float32's rounds agree."""
    import torch

    rates: dict[str, list[float]] = {"float32": [], "bfloat16": [], "float16": []}
    for _ in range(ROUNDS):
        for dtype in rates:
            rates[dtype].append(matmul_gflops(dtype))
    f32, bf16, f16 = (max(rates[d]) for d in rates)
    flags = cpu_flags()
    ratio = bf16 / f32
    best, second = sorted(rates["float32"], reverse=True)[:2]
    agree = best <= AGREE * second  # the two fastest float32 readings: one disturbed round does not make it unclear
    clear = not flags or (agree and (ratio >= KEEP_ABOVE or ratio <= KEEP_BELOW))
    return Bf16Check(bool(flags) and ratio >= KEEP_ABOVE and clear, "cpu", torch.backends.cpu.get_cpu_capability(),
                     flags, round(f32, 2), round(bf16, 2), round(f16, 2), clear)


@lru_cache(maxsize=None)
def bf16_check() -> Bf16Check:
    """This machine's answer, measured once and cached per machine (see the module docstring); delete
    :func:`check_file` to measure again."""
    import torch

    if torch.cuda.is_available():  # native only: torch's default also says yes where bf16 is merely emulated
        return Bf16Check(torch.cuda.is_bf16_supported(including_emulation=False), "cuda", torch.cuda.get_device_name(0), "")
    if os.environ.get(PINNED):  # a worker of a run: the answer its starting process used, so no change spans two dtypes
        try:
            return Bf16Check(**json.loads(os.environ[PINNED]))
        except (ValueError, TypeError):
            pass  # not ours to read: measure
    from ..atomic import atomic_write_text, file_lock

    path = check_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = machine_key()
    with file_lock(path):
        known = _read(path)
        try:
            return Bf16Check(**known[key])
        except (KeyError, TypeError):  # not measured here yet, or a record this version cannot read: measure
            pass
        check = measure()
        if check.clear:
            atomic_write_text(path, json.dumps({**known, key: asdict(check)}, indent=2))
    return check


def pinned_answer() -> dict[str, str]:
    """The environment entry that hands this process's answer to a process it starts (none on a GPU machine, where
    each process asks its own GPU)."""
    import torch

    return {} if torch.cuda.is_available() else {PINNED: json.dumps(asdict(bf16_check()))}


@contextmanager
def pinned_for_workers():
    """While a run lasts, hand this process's answer to every process it starts (Ray workers, ``accelerate launch``)
    through the environment: its points then decide ``auto`` and the default dtype as its initial model was
    evaluated, even where a worker's own reading would be unclear. A GPU worker still asks its own GPU."""
    before = os.environ.get(PINNED)
    os.environ.update(pinned_answer())
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(PINNED, None)
        else:
            os.environ[PINNED] = before


def _read(path) -> dict:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


_said: set[tuple] = set()


def resolve_dtype(requested: str | None, what: str = "generation") -> str | None:
    """The dtype to use for ``what`` (generation, training, scoring): "auto" becomes bfloat16 where this machine
    runs it natively and float32 elsewhere, said once with the reason; a named dtype is honoured, with one warning
    line when it is a half precision this processor emulates; None stays None (the weights' own dtype)."""
    if requested not in DTYPES:
        from ..errors import FtauditError

        raise FtauditError(f"unknown {what} dtype '{requested}'; use auto, float32, bfloat16 or float16")
    if requested is None or requested == "float32":
        return requested
    check = bf16_check()
    if requested == AUTO:
        chosen = "bfloat16" if check.native else "float32"
        _say_once(("auto", what, chosen), f"{what} dtype: {chosen} ({check.reason()})", None)
        return chosen
    if check.slow(requested):
        _say_once(("slow", what, requested), f"{what} dtype {requested} as asked, but this processor does not run it "
                  f"natively ({check.reason(requested)})", "yellow")
    return requested


def _say_once(key: tuple, text: str, style: str | None) -> None:
    if key in _said:
        return
    _said.add(key)
    from ..progress import say

    say(text, style)


def generation_dtype(requested: str | None, saved: str | None, backend: str) -> tuple[str | None, str]:
    """The dtype a generation's identity records, and a readable note of where it came from.

    Resolved here, once the engine is known: vLLM and remote APIs choose their own dtype ("auto" becomes None; a
    named one is refused by them). For local transformers generation the key names the dtype actually computed in,
    and the model is loaded in exactly that dtype (the caller loads with the returned dtype; None is the plain
    load). The plain load (no dtype asked, none defaulted) computes in the checkpoint's own dtype (its config's, else
    its weights file's, as transformers reads it) and keeps None, as keys always have; so "auto" or a named dtype that
    lands on the checkpoint's own dtype shares the plain load's key, and a float32 fallback for an emulated
    half-precision checkpoint is recorded as float32, like asking for float32. ``saved`` is the dtype the checkpoint
    is stored in (:func:`~ftaudit.models.loading.saved_dtype`, read once by the caller); where it cannot be read
    (None), a named dtype is keyed and loaded as named, never assumed to be the checkpoint's own."""
    if backend != "hf":
        return (None if requested == AUTO else requested), f"{backend} chooses its own dtype"
    default = default_for_saved(saved, announce=not requested)  # a dtype asked is loaded as asked: no fallback line
    used = resolve_dtype(requested) if requested else default
    own = saved or "float32"
    how = ("asked" if requested not in (None, AUTO) else "auto" if requested == AUTO else "default")
    note = f"{used or own} ({how}; checkpoint stored in {saved or 'a dtype ftaudit cannot read'})"
    if requested == AUTO or "bfloat16" in (requested, own) or "float16" in (requested, own):  # the machine decided
        note += f"; {bf16_check().reason('float16' if 'float16' in (requested, own) else 'bfloat16')}"
    if default is None and (used is None or (saved is not None and used == saved)):
        return None, note  # the plain load: the checkpoint's own dtype, known to be what was asked
    return used, note  # loaded in exactly this dtype (an unreadable checkpoint's own is never assumed)


def default_for_saved(saved: str | None, training: bool = False, announce: bool = True) -> str | None:
    """The dtype a checkpoint stored in ``saved`` is loaded in when none is asked for (the rule of
    :func:`ftaudit.models.loading.default_dtype`, which reads ``saved`` and asks here)."""
    import torch

    if torch.cuda.is_available():
        if torch.cuda.is_bf16_supported(including_emulation=False):
            return "bfloat16"
        return ("float32" if training else "float16") if saved == "bfloat16" else None
    if saved in ("bfloat16", "float16"):
        check = bf16_check()
        if check.slow(saved):
            if announce:
                _say_once(("default", saved), f"a checkpoint stored in {saved} is loaded in float32 here, as no dtype "
                          f"was asked ({check.reason(saved)})", None)
            return "float32"
    return None
