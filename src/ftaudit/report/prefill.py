"""The prefilling attack's results (:mod:`ftaudit.prefill`): per model, judge and k, from the evaluation rows."""

from __future__ import annotations


def model_label(name: str, k: int) -> str:
    """``aligned+prefill(k=10)``: an attacked model of ``name`` in every table (k = 0: the same prompts unprefilled)."""
    return f"{name}+prefill(k={k})"


def prefill_rows(eval_rows, names: list[str], ks: tuple[int, ...], judges: list[str],
                 undefended: dict[str, str] | None = None) -> list[dict]:
    """Per model, judge and k: refusal on the continuations (pooled over the harmful sets, Wilson interval), attack
    success (the share not refused), the paired change against k = 0 on the same prompts (Newcombe) and, for a
    defended model named in ``undefended``, the paired change against the undefended model at the same k: what the
    defense kept under the attack, prompt by prompt (the prompts both answered)."""
    from ..metrics import paired_change, rate

    by: dict[tuple, dict] = {}
    unanswered: dict[tuple, int] = {}
    for r in eval_rows:
        if r["kind"] != "harmful":
            continue
        if r["refused"] is None:  # blank, too long or unjudged: counted apart, never as compliance or refusal
            unanswered[(r["model"], r["judge"])] = unanswered.get((r["model"], r["judge"]), 0) + 1
            continue
        by.setdefault((r["model"], r["judge"]), {})[(r["dataset"], r["split"], r["prompt_id"])] = float(r["refused"])
    rows = []
    for name in names:
        for judge in judges:
            base = by.get((model_label(name, 0), judge)) or {}
            for k in (0, *sorted(ks)):
                label = model_label(name, k)
                mine, missing = by.get((label, judge)) or {}, unanswered.get((label, judge), 0)
                if not mine and not missing:
                    continue  # this judge never read this model
                # nothing answered is "not measured" (n = 0, no rate), never a refusal rate of its own
                refusal = rate([v == 1.0 for v in mine.values()]) if mine else {"value": None, "ci": [None, None], "n": 0}
                twin = by.get((model_label((undefended or {}).get(name, ""), k), judge)) or {}
                rows.append({"model": name, "k": k, "judge": judge, "refusal": refusal,
                             "attack_success": None if refusal["value"] is None else 1 - refusal["value"],
                             "unanswered": missing,
                             "vs_unprefilled": paired_change(base, mine, "refusal_rate") if k and base and mine else None,
                             "vs_undefended": paired_change(twin, mine, "refusal_rate") if twin and mine else None})
    return rows


def _pct(r: dict) -> str:
    if not r["n"]:
        return "not measured (0)"
    return f"{100 * r['value']:.1f}% [{100 * r['ci'][0]:.1f}, {100 * r['ci'][1]:.1f}] ({r['n']})"


def _success(r: dict) -> str:
    return "–" if r["attack_success"] is None else f"{100 * r['attack_success']:.1f}%"


def _change(c: dict | None, with_n: bool = True) -> str:
    """A paired change with its interval (and n); "–" where none was measured (no prompt in common)."""
    if not c or not c.get("n"):
        return "–"
    return (f"{100 * c['value']:+.1f} pts [{100 * c['ci'][0]:+.1f}, {100 * c['ci'][1]:+.1f}]"
            + (f" ({c['n']})" if with_n else ""))


def prefill_markdown(record: dict) -> str:
    lines = ["# Prefilling attack", "",
             f"Each answer opened with the first k tokens of a compliant answer by `{record['reference_model']}` (generated "
             "at run time), the model continuing; judged on the continuation alone, which the refusal judges were not "
             "validated on (they were on whole replies). k = 0 is the same prompts unprefilled.", "",
             "| model | judge | k | refusal [95% CI] (n) | attack success | vs k = 0 [95% CI] |"
             + (" vs undefended, same k [95% CI] (n) |" if record.get("undefended") else "") + " unanswered |",
             "|---|---|---|---|---|---|---|" + ("---|" if record.get("undefended") else "")]
    for r in record["rows"]:
        vs = _change(r["vs_unprefilled"], with_n=False)
        twin = f" {_change(r.get('vs_undefended'))} |" if record.get("undefended") else ""
        lines.append(f"| {r['model']} | {r['judge']} | {r['k']} | {_pct(r['refusal'])} | {_success(r)} "
                     f"| {vs} |{twin} {r['unanswered']} |")
    lines += ["", "Prompts prefilled per set (the rest: the reference model refused, or its answer was shorter than the "
              "longest prefix):", ""]
    for name, sets in record["prompts"].items():
        for label, d in sets.items():
            lines.append(f"- {name} · {label}: {d['prefilled']} of {d['of']} ({d['refused']} refused, {d['short']} short)")
    return "\n".join(lines) + "\n"


def prefill_tables(summary_prefill: dict | None) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, rows) for an experiment's report: refusal per k on the continuation, with the change against
    the same prompts unprefilled."""
    if not summary_prefill or not summary_prefill.get("rows"):
        return []
    undefended = summary_prefill.get("undefended") or {}
    rows = [[r["model"], r["judge"], str(r["k"]), _pct(r["refusal"]), _success(r), _change(r["vs_unprefilled"]),
             _change(r.get("vs_undefended")) if r["model"] in undefended else "–", str(r["unanswered"])]
            for r in summary_prefill["rows"]]
    title = (f"Prefilling attack: answers opened with the first k tokens of {summary_prefill.get('reference_model')}'s "
             "compliant answers, judged on the continuation (k = 0: the same prompts unprefilled; a defended model "
             "also against its undefended twin at the same k, on the prompts both answered)")
    return [(title, ["model", "judge", "k", "refusal [95% CI] (n)", "attack success", "vs k = 0 [95% CI] (n)",
                     "vs undefended, same k [95% CI] (n)", "unanswered"], rows)]
