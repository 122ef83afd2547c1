"""How long the harm classifier's training prompts are, by group, against its held-out benign sets (not a timed test).

Why: v10 flagged 7-13% of third parties' role prompts, most at 0.99 and more, where 18 of the 21 it flagged in
``prompt-forge-roles`` scored 0.001-0.006 cut to their first sentence with the same answer
(``bench/role_prompt_flags.py``). This prints, per training group and per held-out set, the MiniLM token length of the
prompts (median, 90th percentile, share over 60 tokens; no special tokens) and of the answers: v10's benign prompts
with a compliant answer were short (median 14 tokens, 2.0% over 60) where the third parties' role sets are long (91-98%
over 60), the cause v11's added training pairs address (docs/services.md; ``runs/harm-lengths-v10.log`` was run on
v10's code).
Reads the training pairs of the code in use (v11's groups included) and each held-out set's eval split; the answers
come from the reference model's cache (generated where missing).

Usage: python bench/harm_lengths.py
"""

from __future__ import annotations

import numpy as np

from ftaudit import harm_classifier as hc
from ftaudit.data import get_prompts


def row(name: str, lengths: list[int], answers: list[int] | None = None) -> str:
    x = np.array(lengths)
    out = (f"{name:<34} n={len(x):>5}  prompt tokens median {np.median(x):>5.0f}  p90 {np.percentile(x, 90):>5.0f}  "
           f"over 60: {100 * (x > 60).mean():5.1f}%")
    return out + (f"  answer tokens median {np.median(answers):.0f}" if answers is not None else "")


def main() -> None:
    tok = hc._tokenizer()
    n = lambda t: len(tok(t, add_special_tokens=False)["input_ids"])  # noqa: E731
    data = hc.training_pairs(hc.HARMFUL_SOURCES, hc.DEFAULT_REFERENCE)
    print("training pairs, by group (label):")
    for group in dict.fromkeys(data.groups):
        idx = [i for i, g in enumerate(data.groups) if g == group]
        print("  " + row(f"{group} ({data.labels[idx[0]]})", [n(data.prompts[i]) for i in idx],
                         [n(data.answers[i]) for i in idx]))
    print("held-out benign sets (eval split):")
    for name in hc.HELD_OUT["benign"]:
        try:
            prompts = get_prompts(name, "eval")
        except Exception as exc:  # XSTest comes from the hub: offline it is left out
            print(f"  {name}: unavailable ({str(exc)[:80]})")
            continue
        print("  " + row(name, [n(p.prompt) for p in prompts]))


if __name__ == "__main__":
    main()
