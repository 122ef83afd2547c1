"""Before -> after comparisons (Qi et al.'s Table 1 rows) and results taken over the seeds of one setting.

A comparison pairs an attacked model with the model it was fine-tuned from, on the same items, judged by the
same judge *version*; rates get Newcombe's paired interval and an exact McNemar test, means a BCa interval.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from ..metrics import across_seeds, capability_metric, mcnemar_p, paired_change, score_metric
from ..seeds import split_seed
from ..tamper import refusal_drop


def initial_model(model: str) -> str | None:
    """'aligned+harmful-shots-10' (or 'aligned+benign(n=25)@seed=1') was fine-tuned from 'aligned'."""
    model = split_seed(model)[0]
    return model.rsplit("+", 1)[0] if "+" in model else None


def _value(r: dict) -> float | None:
    return r["score"] if r.get("score") is not None else r["refused"]


@dataclass(frozen=True)
class _Meta:
    attack: str
    kind: str
    is_score: bool
    system_prompt: str | None
    fingerprint: str | None


def _per_item(rows: list[dict]) -> tuple[dict, dict]:
    """{(model, dataset, split, judge, judge_version): {prompt_id: value}} and each key's :class:`_Meta`."""
    per: dict[tuple, dict[str, float]] = defaultdict(dict)
    meta = {}
    for r in rows:
        value = _value(r)
        if value is None:
            continue
        key = (r["model"], r["dataset"], r["split"], r["judge"], r["judge_version"])
        per[key][r["prompt_id"]] = float(value)
        meta[key] = _Meta(r["attack"], r["kind"], r.get("score") is not None, r.get("system_prompt") or None,
                          r.get("model_fingerprint"))
    return per, meta


def _metric(judge: str, kind: str, is_score: bool) -> str:
    return score_metric(judge) if is_score else "refusal_rate" if kind == "harmful" else "over_refusal_rate"


def before_after(before: dict[str, float], after: dict[str, float], metric: str) -> dict:
    """Initial and fine-tuned means over the items both models have, and the paired change."""
    common = before.keys() & after.keys()
    n = max(len(common), 1)
    return {"initial": sum(before[k] for k in common) / n, "fine_tuned": sum(after[k] for k in common) / n,
            "change": paired_change(before, after, metric)}


SAME_PROMPT = "the initial model under the attack's system prompt"
WITHOUT_PROMPT = "the initial model without the attack's system prompt (the change includes the prompt's own effect)"


def references(key: tuple, per: dict, meta: dict) -> list[tuple[str, str | None]]:
    """The evaluations an attacked model's row is compared with: (initial model name, ``against`` label or None).

    The initial model by name; where the attacked model was evaluated under a system prompt its initial model was not
    (identity shift: the attack's "AOA" prompt), also the same weights (fingerprint) evaluated under that prompt,
    and the plain row is then labelled as including the prompt's own effect."""
    model, *rest = key
    base = initial_model(model)
    if base is None:
        return []
    mine = meta[key].system_prompt
    out = []
    plain = (base, *rest)
    if plain in per:
        out.append((base, None if meta[plain].system_prompt == mine else WITHOUT_PROMPT))
    base_print = meta[plain].fingerprint if plain in per else None
    if mine and base_print and out and out[0][1] is not None:
        twins = sorted(k[0] for k, m in meta.items() if tuple(k[1:]) == tuple(rest) and "+" not in split_seed(k[0])[0]
                       and m.fingerprint == base_print and m.system_prompt == mine)
        out += [(t, SAME_PROMPT) for t in twins[:1]]
    return out


def changes(rows: list[dict], tamper: dict | None = None) -> list[dict]:
    """One row per attacked model, dataset, split, judge version and reference: initial -> fine-tuned on the same
    prompts, plus the same taken over seeds where a setting was trained with several. A refusal row carries its
    refusal drop against ``tamper`` (threshold, relative: the run's tamper rule) with a verdict."""
    per, meta = _per_item(rows)
    rule = {"threshold": float((tamper or {}).get("threshold", 0.5)), "relative": bool((tamper or {}).get("relative", True))}
    out = []
    for key, after in per.items():
        model, dataset, split, judge, version = key
        for base, against in references(key, per, meta):
            before = per[(base, dataset, split, judge, version)]
            m = meta[key]
            metric = _metric(judge, m.kind, m.is_score)
            row = {"model": model, "initial_model": base, "attack": m.attack, "dataset": dataset, "split": split,
                   "judge": judge, "judge_version": version, "seed": split_seed(model)[1], "metric": metric,
                   **before_after(before, after, metric), "against": against,
                   "mcnemar_p": None if m.is_score else mcnemar_p({k: bool(v) for k, v in before.items()},
                                                                   {k: bool(v) for k, v in after.items()})}
            if metric == "refusal_rate":
                row["drop"] = refusal_drop(before, [after], **rule)
            out.append(row)
    return out + _seed_changes(per, meta, rule)


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


def _seed_changes(per: dict, meta: dict, rule: dict) -> list[dict]:
    out = []
    for (model, *rest), seeds in _by_seed(per).items():
        first = (f"{model}@seed={min(seeds)}", *rest)
        dataset, split, judge, version = rest
        for base, against in references(first, per, meta):
            before = per[(base, *rest)]
            m = meta[first]
            metric = _metric(judge, m.kind, m.is_score)
            row = {"model": model, "initial_model": base, "attack": split_seed(m.attack)[0], "dataset": dataset,
                   "split": split, "judge": judge, "judge_version": version, **_over_seeds(seeds, before, metric),
                   "against": against, "mcnemar_p": None}
            if metric == "refusal_rate":
                row["drop"] = refusal_drop(before, [seeds[s] for s in sorted(seeds)], **rule)
            out.append(row)
    return out


def seed_results(rows: list[dict], cap_rows: list[dict]) -> list[dict]:
    """Result rows over the seeds of one setting (model name without ``@seed=S``): mean, interval, spread."""
    per, meta = _per_item(rows)
    gens = {(r["model"], r["dataset"], r["split"], r["judge"], r["judge_version"]): r["gen_key"] for r in rows}
    out = []
    for (model, dataset, split, judge, version), seeds in _by_seed(per).items():
        first = (f"{model}@seed={min(seeds)}", dataset, split, judge, version)
        m = meta[first]
        metric = _metric(judge, m.kind, m.is_score)
        agg = across_seeds(seeds, metric)
        out.append({"model": model, "attack": split_seed(m.attack)[0], "dataset": dataset, "split": split, "judge": judge,
                    "judge_version": version, "generation": gens[first], "model_fingerprint": None, "seed": None,
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
