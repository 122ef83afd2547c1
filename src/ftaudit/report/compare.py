"""Before -> after comparisons (Qi et al.'s Table 1 rows) and results taken over the seeds of one setting.

A comparison pairs an attacked model with the model it was fine-tuned from, on the same items, judged by the
same judge *version*; rates get Newcombe's paired interval and an exact McNemar test, means a BCa interval.
"""

from __future__ import annotations

from collections import defaultdict

from ..metrics import across_seeds, capability_metric, mcnemar_p, paired_change, score_metric
from ..seeds import split_seed


def initial_model(model: str) -> str | None:
    """'aligned+harmful-shots-10' (or 'aligned+benign(n=25)@seed=1') was fine-tuned from 'aligned'."""
    model = split_seed(model)[0]
    return model.rsplit("+", 1)[0] if "+" in model else None


def _value(r: dict) -> float | None:
    return r["score"] if r.get("score") is not None else r["refused"]


def _per_item(rows: list[dict]) -> tuple[dict, dict]:
    """{(model, dataset, judge, judge_version): {prompt_id: value}} and each key's (attack, kind, is_score)."""
    per: dict[tuple, dict[str, float]] = defaultdict(dict)
    meta = {}
    for r in rows:
        value = _value(r)
        if value is None:
            continue
        key = (r["model"], r["dataset"], r["judge"], r["judge_version"])
        per[key][r["prompt_id"]] = float(value)
        meta[key] = (r["attack"], r["kind"], r.get("score") is not None)
    return per, meta


def _metric(judge: str, kind: str, is_score: bool) -> str:
    return score_metric(judge) if is_score else "refusal_rate" if kind == "harmful" else "over_refusal_rate"


def before_after(before: dict[str, float], after: dict[str, float], metric: str) -> dict:
    """Initial and fine-tuned means over the items both models have, and the paired change."""
    common = before.keys() & after.keys()
    n = max(len(common), 1)
    return {"initial": sum(before[k] for k in common) / n, "fine_tuned": sum(after[k] for k in common) / n,
            "change": paired_change(before, after, metric)}


def changes(rows: list[dict]) -> list[dict]:
    """One row per attacked model, dataset and judge version: initial -> fine-tuned on the same prompts, plus the
    same taken over seeds where a setting was trained with several."""
    per, meta = _per_item(rows)
    out = []
    for (model, dataset, judge, version), after in per.items():
        base = initial_model(model)
        if base is None or (base, dataset, judge, version) not in per:
            continue
        before = per[(base, dataset, judge, version)]
        attack, kind, is_score = meta[(model, dataset, judge, version)]
        metric = _metric(judge, kind, is_score)
        out.append({"model": model, "initial_model": base, "attack": attack, "dataset": dataset, "judge": judge,
                    "judge_version": version, "seed": split_seed(model)[1], "metric": metric,
                    **before_after(before, after, metric),
                    "mcnemar_p": None if is_score else mcnemar_p({k: bool(v) for k, v in before.items()},
                                                                  {k: bool(v) for k, v in after.items()})})
    return out + _seed_changes(per, meta)


def _by_seed(per: dict) -> dict[tuple, dict[int, dict]]:
    """Group per-item values of seeded models (``NAME@seed=S``) under (NAME, *rest of key)."""
    groups: dict[tuple, dict[int, dict]] = defaultdict(dict)
    for key, values in per.items():
        base, seed = split_seed(key[0])
        if seed is not None:
            groups[(base, *key[1:])][seed] = values
    return {k: v for k, v in groups.items() if len(v) > 1}


def _over_seeds(seeds: dict[int, dict], before: dict[str, float], metric: str) -> dict:
    """The before -> after fields of a change row taken over seeds (mean, seeds x prompts interval, spread)."""
    agg = across_seeds(seeds, metric, before)
    return {"seed": None, "seeds": sorted(seeds), "metric": metric, "initial": agg["initial"],
            "fine_tuned": agg["initial"] + agg["value"], "change": {k: agg[k] for k in ("value", "ci", "n", "n_seeds")},
            "spread": agg["spread"]}


def _seed_changes(per: dict, meta: dict) -> list[dict]:
    out = []
    for (model, dataset, judge, version), seeds in _by_seed(per).items():
        base = initial_model(model)
        before = per.get((base, dataset, judge, version))
        if before is None:
            continue
        attack, kind, is_score = meta[(f"{model}@seed={min(seeds)}", dataset, judge, version)]
        out.append({"model": model, "initial_model": base, "attack": split_seed(attack)[0], "dataset": dataset,
                    "judge": judge, "judge_version": version, **_over_seeds(seeds, before, _metric(judge, kind, is_score)),
                    "mcnemar_p": None})
    return out


def seed_results(rows: list[dict], cap_rows: list[dict]) -> list[dict]:
    """Result rows over the seeds of one setting (model name without ``@seed=S``): mean, interval, spread."""
    per, meta = _per_item(rows)
    gens = {(r["model"], r["dataset"], r["judge"], r["judge_version"]): (r["split"], r["gen_key"]) for r in rows}
    out = []
    for (model, dataset, judge, version), seeds in _by_seed(per).items():
        first = f"{model}@seed={min(seeds)}"
        attack, kind, is_score = meta[(first, dataset, judge, version)]
        metric = _metric(judge, kind, is_score)
        split, gen = gens[(first, dataset, judge, version)]
        agg = across_seeds(seeds, metric)
        out.append({"model": model, "attack": split_seed(attack)[0], "dataset": dataset, "split": split, "judge": judge,
                    "judge_version": version, "generation": gen, "model_fingerprint": None, "seed": None,
                    "seeds": sorted(seeds), "metric": metric, **agg})
    cap = _per_task(cap_rows)
    for (model, task), seeds in _by_seed({(m, t): v for (m, t), v in cap.items()}).items():
        metric, dataset, split, judge = capability_metric(task)
        out.append({"model": model, "attack": "", "dataset": dataset, "split": split, "judge": judge, "judge_version": judge,
                    "generation": None, "model_fingerprint": None, "seed": None, "seeds": sorted(seeds), "metric": metric,
                    **across_seeds(seeds, metric)})
    return out


def _per_task(cap_rows: list[dict]) -> dict[tuple, dict[str, float]]:
    per: dict[tuple, dict[str, float]] = defaultdict(dict)
    for r in cap_rows:
        if r["value"] is not None and r["value"] == r["value"]:  # NaN: an unparseable verdict, never averaged
            per[(r["model"], r["task"])][r["item_id"]] = float(r["value"])
    return per


def capability_changes(cap_rows: list[dict]) -> list[dict]:
    """Capability before -> after each attack on the same items (paired interval), and over seeds."""
    per = _per_task(cap_rows)
    attacks = {r["model"]: r["attack"] for r in cap_rows}
    out = []
    for (model, task), after in per.items():
        base = initial_model(model)
        if base is None or (base, task) not in per:
            continue
        metric, dataset, _, judge = capability_metric(task)
        out.append({"model": model, "initial_model": base, "attack": attacks[model], "dataset": dataset, "judge": judge,
                    "seed": split_seed(model)[1], "metric": metric, **before_after(per[(base, task)], after, metric)})
    for (model, task), seeds in _by_seed(per).items():
        base = initial_model(model)
        if (base, task) not in per:
            continue
        metric, dataset, _, judge = capability_metric(task)
        out.append({"model": model, "initial_model": base, "attack": split_seed(attacks[f"{model}@seed={min(seeds)}"])[0],
                    "dataset": dataset, "judge": judge, **_over_seeds(seeds, per[(base, task)], metric)})
    return out
