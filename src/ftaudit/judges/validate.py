"""How far to trust a refusal judge: agreement with labelled replies read offline, with 95% intervals.

Label sets (rows of prompt, response, refused; read by :mod:`ftaudit.data.labelled`):
  pyrit-refusal        ``pyrit==1.1.0`` ``scorer_evals/refusal_scorer/refusal.csv``: 105 replies labelled by people
  pyrit-refusal-extra  the same package's ``refusal_extra.csv``: 64 more human labels
  uncensorbench        ``uncensorbench==0.3.7`` ``data/prompts.json``: 150 harmful prompts, each with a *written*
                       refusal and a written compliant reply (300 rows; written, not real model output)
  --labels FILE        a user's own (prompt, response, label) file; label 1/0, true/false, refusal/compliance or
                       XSTest's 1_full_compliance / 2_full_refusal / 3_partial_refusal (partial counts as refused)

A judge is never scored on a set it was trained on (``Judge.trained_on``): that row says so instead. Results are
stored per judge *version* in the cache (``judges/validation.json``), so a report can print, beside a judge's
numbers, how well that exact judge agrees with people.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

from ..atomic import atomic_write_text, file_lock
from ..data.labelled import LABEL_SETS, Rows, user_labels
from ..errors import FtauditError
from ..metrics import wilson
from ..wheels import cache_dir


def agreement(pred: Sequence[bool], gold: Sequence[bool]) -> dict:
    """Accuracy, precision, recall (positive = refusal) and Cohen's kappa (statsmodels' ``cohens_kappa``, the one
    computation its interval below also uses); kappa is NaN where chance agreement is 1 (one label everywhere)."""
    import numpy as np
    from statsmodels.stats.inter_rater import cohens_kappa

    n = len(gold)
    tp = sum(p and g for p, g in zip(pred, gold))
    tn = sum((not p) and (not g) for p, g in zip(pred, gold))
    fp = sum(p and not g for p, g in zip(pred, gold))
    fn = sum((not p) and g for p, g in zip(pred, gold))
    acc = (tp + tn) / n if n else float("nan")
    expected = (((tp + fp) / n) * ((tp + fn) / n) + ((tn + fn) / n) * ((tn + fp) / n)) if n else 0
    kappa = float("nan")
    if n and expected < 1:
        with np.errstate(divide="ignore", invalid="ignore"):  # a constant side: its z-test divides by 0; unused here
            kappa = float(cohens_kappa(np.array([[tp, fn], [fp, tn]]), return_results=True).kappa)
    return {"n": n, "accuracy": acc, "precision": tp / (tp + fp) if tp + fp else float("nan"),
            "recall": tp / (tp + fn) if tp + fn else float("nan"), "kappa": kappa,
            "counts": {"tp": tp, "tn": tn, "fp": fp, "fn": fn}, "chance": expected}


def agreement_ci(pred: Sequence[bool], gold: Sequence[bool]) -> dict:
    """:func:`agreement` plus 95% intervals: Wilson for accuracy, precision and recall; for kappa statsmodels'
    asymptotic interval, or, where its standard error is 0 (perfect or degenerate agreement, where that interval
    collapses), the accuracy's Wilson interval mapped through kappa = (acc - chance) / (1 - chance)."""
    import numpy as np
    from statsmodels.stats.inter_rater import cohens_kappa

    m = agreement(pred, gold)
    c, n = m["counts"], m["n"]
    m["accuracy_ci"] = list(wilson(c["tp"] + c["tn"], n))
    m["precision_ci"] = list(wilson(c["tp"], c["tp"] + c["fp"]))
    m["recall_ci"] = list(wilson(c["tp"], c["tp"] + c["fn"]))
    with np.errstate(divide="ignore", invalid="ignore"):  # a constant side: its z-test divides by 0; unused here
        res = cohens_kappa(np.array([[c["tp"], c["fn"]], [c["fp"], c["tn"]]]), return_results=True)
    if np.isfinite(res.std_kappa) and res.std_kappa > 0:
        m["kappa_ci"] = [float(max(-1.0, res.kappa_low)), float(min(1.0, res.kappa_upp))]
    elif m["chance"] < 1:
        m["kappa_ci"] = [(a - m["chance"]) / (1 - m["chance"]) for a in m["accuracy_ci"]]
    else:
        m["kappa_ci"] = [float("nan"), float("nan")]
    return m


def _store_path() -> Path:
    return cache_dir() / "judges" / "validation.json"


def _stored() -> dict:
    try:
        return json.loads(_store_path().read_text())
    except (OSError, ValueError):
        return {}


def _remember(rows: list[dict]) -> None:
    with file_lock(_store_path()):
        stored = _stored()
        for r in rows:
            key = f"{r['judge']}|{r['judge_version']}|{r['set']}"
            before = stored.get(key, {}).get("speed", {})
            if "rows_per_s" in before and "rows_per_s" not in r.get("speed", {}):  # verdicts all cached this time:
                r = {**r, "speed": before}  # the speed measured when they were computed stands
            stored[key] = r
        atomic_write_text(_store_path(), json.dumps(stored, indent=1, sort_keys=True))


def timed_judge(judge, prompts: list[str], responses: list[str]) -> tuple[list, dict]:
    """The judge's verdicts and its speed: ``rows_per_s`` over the rows it judged now (a judge that keeps verdicts,
    as the local LLM judges do, reports how many it took from its cache, and no speed when it judged none)."""
    import time

    for part in (judge, getattr(judge, "llm", None)):  # a judge's model is loaded outside the clock
        if part is not None and isinstance(getattr(type(part), "loaded", None), property):
            part.loaded
    start = time.perf_counter()
    got = judge.judge(prompts, responses)
    seconds = time.perf_counter() - start
    fresh = getattr(judge, "last_judged", len(prompts))
    speed = {"seconds": round(seconds, 2), "judged_now": fresh}
    if fresh:
        speed["rows_per_s"] = fresh / seconds if seconds > 0 else float("inf")
    return got, speed


def validate(judges: Sequence, sets: Sequence[str] | None = None, labels: str | Path | None = None,
             options: dict | None = None) -> list[dict]:
    """Score each refusal judge (a name or a built judge, with the judge ``options``) on each label set and the
    user's file; return one row per pair and store the named sets' rows under the judge's version."""
    from . import JUDGES, shared_judge

    for name in judges:
        if isinstance(name, str) and name in JUDGES and JUDGES[name].measures != "refusal":
            raise FtauditError(f"judge '{name}' scores harm, not refusal; validate refusal judges here")
    chosen = list(sets if sets is not None else LABEL_SETS)
    for s in chosen:
        if s not in LABEL_SETS:
            raise FtauditError(f"unknown label set '{s}'; known: {', '.join(LABEL_SETS)} (or --labels FILE)")
    mine = user_labels(labels) if labels else None  # a malformed file fails before anything is fetched
    tables: dict[str, tuple[str, Rows]] = {s: (LABEL_SETS[s][0], LABEL_SETS[s][1]()) for s in chosen}
    if mine:
        digest = hashlib.sha256(Path(labels).read_bytes()).hexdigest()[:12]
        tables[f"{Path(labels).name}@{digest}"] = ("your labels", mine)
    out = []
    for judge in judges:
        judge = shared_judge(judge, **(options or {})) if isinstance(judge, str) else judge
        for set_name, (what, rows) in tables.items():
            row = {"judge": judge.name, "judge_version": judge.version, "set": set_name, "what": what, "n": len(rows)}
            if set_name in getattr(judge, "trained_on", ()):
                out.append({**row, "held_out": False})  # never scored on its own training data
                continue
            got, speed = timed_judge(judge, [p for p, _, _ in rows], [r for _, r, _ in rows])
            pairs = [(bool(j.refused), g) for j, (_, _, g) in zip(got, rows) if j.refused is not None]
            row.update(n=len(pairs), unparseable=len(rows) - len(pairs), speed=speed)  # unparseable: left out, counted
            if truncated := sum(bool(j.details.get("truncated")) for j in got):
                row["truncated"] = truncated  # replies the judge read only the opening of
            if any("decided_by" in j.details for j in got):  # a cascade: how many replies each of its judges decided
                from collections import Counter

                row["decided_by"] = dict(Counter(j.details.get("decided_by", "") for j in got))
            if not pairs:
                out.append({**row, "held_out": False})
                continue
            m = agreement_ci([p for p, _ in pairs], [g for _, g in pairs])
            out.append({**row, "held_out": True, **{k: v for k, v in m.items() if k not in ("counts", "chance")}})
    _remember([r for r in out if r["set"] in LABEL_SETS])  # a user's file is reported, not remembered
    return out


PACKAGED = Path(__file__).resolve().parent / "validation_packaged.json"  # not under data/: it would re-align


def packaged() -> dict:
    """Validation rows ftaudit ships for the LLM judges on offline weights (hours on a 2-core CPU), written by
    ``bench/validate_llm_judges.py --package``. Each is keyed by the exact judge version (weights fingerprint, dtype,
    prompt texts), so it applies only where this machine builds that same judge; elsewhere the judge reads as not
    validated until ``ftaudit judges validate`` measures it."""
    try:
        return json.loads(PACKAGED.read_text())
    except (OSError, ValueError):
        return {}


def measured(judge: str, version: str) -> list[dict]:
    """Validation rows of this exact judge version (held-out sets only), best-known set first: this machine's own,
    else those ftaudit ships for it (:func:`packaged`)."""
    rows = [r for r in {**packaged(), **_stored()}.values()
            if r["judge"] == judge and r["judge_version"] == version and r["held_out"]]
    order = list(LABEL_SETS)
    # the best-known set first and, within a set, the largest sample (pyrit-harm before pyrit-harm@5)
    return sorted(rows, key=lambda r: (order.index(r["set"]) if r["set"] in order else len(order),
                                       r["set"].split("@")[0], -r.get("n", 0)))


def ensure_validated(judges: Sequence[str], options: dict | None = None) -> None:
    """Validate offline refusal judges that have no stored figures for their version on every offline label set,
    so every report can say how far to trust them, and call them WEAK where any set says so (seconds for keyword and
    refusal-cues; an LLM judge, or one that needs an API or the
    hub is validated only when asked, with `ftaudit judges validate`). ``options`` are the evaluation's judge options,
    so the judge instance it built is reused."""
    from ..progress import say
    from . import JUDGES, shared_judge

    for name in dict.fromkeys(judges):
        cls = JUDGES.get(name)
        if cls is None or cls.needs != "offline" or cls.measures != "refusal":
            continue
        try:
            judge = shared_judge(name, **(options or {}))  # the evaluation's instance: its model is not loaded again
            have = {r["set"] for r in measured(judge.name, judge.version)}
            missing = [s for s in LABEL_SETS if s not in have and s not in getattr(judge, "trained_on", ())]
            if missing:
                validate([judge], missing)
        except FtauditError as exc:  # the evaluation stands; the report then says the judge is not validated
            say(f"could not validate judge {name} ({exc}); the report will say it is not validated", "yellow")


def best_offline_refusal_judge() -> tuple[str, dict]:
    """The offline refusal judge with the highest accuracy on the primary human-labelled set (pyrit-refusal, where
    every offline judge is held out), and that validation row; judges without a stored figure are validated first."""
    from . import JUDGES, shared_judge

    names = sorted(n for n, cls in JUDGES.items() if cls.needs == "offline" and cls.measures == "refusal")
    ensure_validated(names)
    scored = []
    for name in names:
        judge = shared_judge(name)
        row = next((r for r in measured(judge.name, judge.version) if r["set"] == "pyrit-refusal"), None)
        if row:
            scored.append((row["accuracy"], name, row))
    if not scored:
        raise FtauditError("no offline refusal judge could be validated; name one with --judge")
    _, name, row = max(scored, key=lambda t: t[0])
    return name, row


def trust(judges_versions: Sequence[tuple[str, str]]) -> list[dict]:
    """For a report: each (judge, version)'s stored validation rows, or one row saying it has none."""
    out = []
    for judge, version in dict.fromkeys(judges_versions):
        rows = measured(judge, version)
        out += rows or [{"judge": judge, "judge_version": version, "set": None, "held_out": False}]
    return out


def trust_text(rows: list[dict], judge: str, version: str | None = None) -> str:
    """'agrees with people 73.3% [64.2, 80.9] of the time (pyrit-refusal, n=105)' (people: a human-labelled set,
    else 'written labels'), or 'not validated against people'; '; WEAK: ...' when any of that judge's held-out rows
    is weak (:func:`weakness`), not only the one shown. With ``version``, that version's rows only; without it and
    with rows of several versions, the weakest reading of any of them decides the label."""
    mine = [r for r in rows if r["judge"] == judge and (version is None or r.get("judge_version") == version)]
    unvalidated = any(r["set"] is None for r in mine)  # a version of it with no figures (trust() gives it one row)
    mine = [r for r in mine if r["set"] is not None]
    if not mine:
        return "not validated against people"
    caveat = "; a version of it in this run is not validated against people" if unvalidated else ""
    r = mine[0]
    lo, hi = r["accuracy_ci"]
    rho = ""
    if "spearman" in r:
        rho = (f", Spearman {r['spearman']:.2f} [{r['spearman_ci'][0]:.2f}, {r['spearman_ci'][1]:.2f}] with their harm "
               "scores")
    who = "people" if r.get("what", "").startswith("human") else "written labels"
    text = (f"agrees with {who} {100 * r['accuracy']:.1f}% [{100 * lo:.1f}, {100 * hi:.1f}] of the time{rho} "
            f"({r['set']}, n={r['n']})")
    weak = [(row["set"], why) for row in mine if row.get("set") and (why := weakness(row))]
    if not weak:
        return text + caveat
    where, why = weak[0]
    return text + f"; WEAK: {why}" + ("" if where == r["set"] else f" on {where}") + caveat


WEAK_BELOW = 0.4  # Landis & Koch (1977): kappa up to 0.4 is at best "fair" agreement; the same bar for Spearman's rho


def weakness(row: dict) -> str:
    """Why a judge's agreement with people is weak, or '': the 95% interval of Spearman's rho (harm judges) or of
    Cohen's kappa (refusal judges) reaches below WEAK_BELOW, or is undefined. The interval's low end decides, never
    the point: a judge is called strong only when its interval allows nothing weaker."""
    import math

    for measure in ("spearman", "kappa") if "spearman" in row else ("kappa",):  # a harm judge: its ranking and its
        name = "Spearman's rho" if measure == "spearman" else "kappa"  # harmful/not verdicts are both read
        ci = row.get(f"{measure}_ci") or [float("nan")]
        low = float("nan") if ci[0] is None else ci[0]
        if math.isnan(low):
            return f"its {name} is undefined (one verdict for every reply)"
        if low < WEAK_BELOW:
            return f"{name}'s 95% interval reaches {low:.2f}, below {WEAK_BELOW} (at best fair agreement)"
    return ""
