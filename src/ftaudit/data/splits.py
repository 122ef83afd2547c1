"""Train/eval splits by near-duplicate group, so held-out prompts have no paraphrase in any training split.

Every prompt of every offline named dataset is grouped with its near-duplicates: two prompts are linked when
the Jaccard similarity of their word sets (lower-cased ``[a-z0-9']+`` tokens) is at least
:data:`NEAR_DUPLICATE_JACCARD`, and a group is a connected component of those links (exact all-pairs Jaccard
from a sparse word-incidence product, scikit-learn + scipy). A whole group lands in one split:

* ``eval`` if any member is pinned to eval (an ``official`` test file, a ``field`` split, an ``eval-only`` set);
* else ``train`` if any member is pinned to train;
* else by the hash rule on the group's canonical member (lowest text hash): ``train`` when its first 8 hex
  digits mod 100 fall below :data:`TRAIN_PERCENT`.

A group with members pinned to both splits keeps its eval members and *holds back* the train-pinned ones
(split ``held-back``: neither trained on nor evaluated), so the property holds even against publishers' splits.
Datasets that need the hub are split against the offline ones without changing them (their conflicting
members are held back instead).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from .records import text_hash

NEAR_DUPLICATE_JACCARD = 0.6
TRAIN_PERCENT = 50
HELD_BACK = "held-back"
TOKEN_PATTERN = r"[a-z0-9']+"


def hash_split(text: str) -> str:
    return "train" if int(text_hash(text)[:8], 16) % 100 < TRAIN_PERCENT else "eval"


def near_duplicate_groups(texts: list[str], threshold: float = NEAR_DUPLICATE_JACCARD) -> np.ndarray:
    """Group label per text: connected components of word-set Jaccard >= ``threshold``."""
    from scipy import sparse
    from scipy.sparse.csgraph import connected_components
    from sklearn.feature_extraction.text import CountVectorizer

    if not texts:
        return np.zeros(0, dtype=int)
    # a text without any word still gets a (singleton) group: the vectorizer needs a non-empty vocabulary
    x = CountVectorizer(token_pattern=TOKEN_PATTERN, binary=True).fit_transform([t or "_" for t in texts]).astype(np.int32)
    inter = (x @ x.T).tocoo()
    sizes = np.asarray(x.sum(axis=1)).ravel()
    union = sizes[inter.row] + sizes[inter.col] - inter.data
    keep = inter.data >= threshold * union
    links = sparse.coo_matrix((np.ones(int(keep.sum())), (inter.row[keep], inter.col[keep])), shape=inter.shape)
    return connected_components(links, directed=False)[1]


def near_duplicates_of(candidates: list[str], training: list[str], threshold: float = NEAR_DUPLICATE_JACCARD) -> list[int]:
    """Indices of ``candidates`` with a near-duplicate (word-set Jaccard >= ``threshold``, the split rule's measure)
    among ``training`` texts, so an evaluation can leave them out. Only candidate x training pairs are compared (a
    sparse product, scikit-learn + scipy), so a training file of any size is cheap."""
    from sklearn.feature_extraction.text import CountVectorizer

    if not candidates or not training:
        return []
    exact = {t.strip().lower() for t in training}  # texts without a word (e.g. all CJK) still match themselves
    same = {i for i, t in enumerate(candidates) if t.strip().lower() in exact}
    try:
        vec = CountVectorizer(token_pattern=TOKEN_PATTERN, binary=True).fit([t or "_" for t in list(candidates) + list(training)])
    except ValueError:  # no text has a word: only exact matches can be near-duplicates
        return sorted(same)
    c = vec.transform([t or "_" for t in candidates]).astype(np.int32)
    t = vec.transform([t or "_" for t in training]).astype(np.int32)
    inter = (c @ t.T).tocoo()
    union = np.asarray(c.sum(axis=1)).ravel()[inter.row] + np.asarray(t.sum(axis=1)).ravel()[inter.col] - inter.data
    hit = (inter.data >= threshold * union) & (union > 0)
    return sorted(set(inter.row[hit].tolist()) | same)


def assign_splits(texts: list[str], pins: list[str | None], fixed: int = 0) -> list[str]:
    """Split of each text. ``pins[i]`` is a publisher's split (train/eval) or None (hash rule). The first ``fixed``
    texts already have their final split in ``pins`` and are not changed (offline datasets when a hub one joins)."""
    labels = near_duplicate_groups(texts)
    members: dict[int, list[int]] = defaultdict(list)
    for i, g in enumerate(labels):
        members[g].append(i)
    out: list[str] = [""] * len(texts)
    for idx in members.values():
        settled = {pins[i] for i in idx if i < fixed and pins[i] != HELD_BACK}
        own = {pins[i] for i in idx if i >= fixed and pins[i]}
        pinned = settled or own
        if pinned:
            target = "eval" if "eval" in pinned else "train"
        else:
            target = hash_split(texts[min(idx, key=lambda i: text_hash(texts[i]))])
        for i in idx:
            if i < fixed:
                out[i] = pins[i]  # type: ignore[assignment]
            else:
                out[i] = HELD_BACK if pins[i] and pins[i] != target else target
    return out
