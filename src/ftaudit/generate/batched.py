"""The one batched path for local (transformers) models: eval generation, local judges and MMLU's scoring pass.

Prompts are token ids. They are sorted by length and cut into batches whose padded size, prompt *and* new
tokens, stays under a token budget (the KV cache grows with both), left-padded, and run through
``model.generate`` (or one forward pass, for log-likelihood scoring). Where every prompt opens with the same
tokens (a chat template's default system prompt: 24 of the quickstart's 43 on average), their KV cache is
computed once and copied into each batch, which pads between that prefix and each prompt's own tokens
(transformers' documented prompt-cache reuse, batched). On CUDA the budget comes from free GPU
memory and the KV-cache size of the model, and ``FTAUDIT_STATIC_CACHE=1`` turns on transformers' static KV
cache (compiled by transformers on CUDA), with prompt lengths rounded up to a multiple of 64 so that few
shapes are compiled.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Iterator, Sequence

from ..progress import progress_bar

CPU_BATCH, CPU_BATCH_TOKENS = 40, 16384  # 2 cores: batch 40 ran as fast as 120, 2.4x batch 8; 135M KV: 46 kB/token
CPU_SCORE_BATCH = 8  # one forward pass is compute-bound on CPU at any batch: bigger ones only add padding
GPU_BATCH = 256
STATIC_BUCKET = 64
SHARED_PREFIX_MIN = 8  # tokens: a shorter common opening is recomputed with each batch


def plan_batches(lengths: Sequence[int], max_size: int, max_tokens: int, new_tokens: int = 0) -> list[list[int]]:
    """Indices sorted longest first, cut into batches of at most ``max_size`` whose padded size
    ``batch x (longest prompt + new_tokens)`` stays within ``max_tokens`` (a lone prompt over it runs alone)."""
    batches: list[list[int]] = []
    for i in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        cur = batches[-1] if batches else None
        if cur and len(cur) < max_size and (lengths[cur[0]] + new_tokens) * (len(cur) + 1) <= max_tokens:
            cur.append(i)
        else:
            batches.append([i])
    return batches


def plan_grouped_batches(prompts: Sequence[Sequence[int]], skip: int, max_size: int,
                         max_tokens: int) -> list[list[tuple[list[int], int]]]:
    """Batches (at most ``max_size`` rows and ``max_tokens`` padded tokens each) of groups of prompts that open
    alike after their first ``skip`` tokens, each group with how many more tokens its rows share (run once for the
    group); a prompt that shares fewer than SHARED_PREFIX_MIN more with any other is a group of its own sharing 0.
    Prompts are taken in token order, so rows that share an opening (one request answered by several models) sit
    side by side, and cut into the groups (of at most ``max_size`` rows) that leave the fewest tokens to compute: an
    exact dynamic programme over the cut points (exact for the shared tokens saved; padding is left out). Groups
    are then packed into batches, longest own part first."""
    order = sorted(range(len(prompts)), key=lambda i: list(prompts[i][skip:]))

    def saved(a: int, b: int) -> int:  # tokens run once, not b - a times, in the group order[a:b]
        share = _common(prompts[order[a]], prompts[order[b - 1]], skip) if b - a > 1 else 0  # sorted: the least
        return (b - a - 1) * share if share >= SHARED_PREFIX_MIN else 0

    best = [(0, 0)] * (len(order) + 1)  # (tokens saved by the first k rows' groups, where the last group starts)
    for k in range(1, len(order) + 1):
        options = [(best[a][0] + saved(a, k), k - a, a) for a in range(max(0, k - max_size), k)]
        total, _, a = max(options)  # ties: the larger group
        best[k] = (total, a)
    groups, k = [], len(order)
    while k:
        a = best[k][1]
        rows = order[a:k]
        groups += ([(rows, _common(prompts[rows[0]], prompts[rows[-1]], skip))] if saved(a, k)
                   else [([i], 0) for i in rows])
        k = a
    # packed by the length of the rows' own parts, longest first: a batch pads every row to its longest own part
    # (on the quickstart's escalated replies, 4% fewer padded tokens than packing by whole length)
    own = {id(g): (max(len(prompts[i]) for i in g[0]) - skip - g[1], g[1]) for g in groups}
    longest = {id(g): max(len(prompts[i]) for i in g[0]) for g in groups}
    batches: list[list[tuple[list[int], int]]] = []
    count = 0
    for g in sorted(groups, key=lambda g: own[id(g)], reverse=True):
        cur = batches[-1] if batches else None
        widest = max(longest[id(h)] for h in (*cur, g)) if cur else 0
        if cur and count + len(g[0]) <= max_size and widest * (count + len(g[0])) <= max_tokens:
            cur.append(g)
            count += len(g[0])
        else:
            batches.append([g])
            count = len(g[0])
    return batches


def _common(a: Sequence[int], b: Sequence[int], skip: int) -> int:
    """How many tokens ``a`` and ``b`` share after their first ``skip``, leaving each at least one of its own."""
    return len(_opened_alike([a[skip:], b[skip:]]))


def kv_bytes_per_token(model) -> int:
    """Bytes of KV cache one token takes in ``model`` (keys and values of every layer)."""
    cfg = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    heads = getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    return 2 * cfg.num_hidden_layers * heads * head_dim * model.dtype.itemsize


def batch_limits(model, batch_size: int | None, max_batch_tokens: int | None,
                 cpu_batch: int = CPU_BATCH) -> tuple[int, int]:
    """(most prompts per batch, token budget): what the caller set, else on CPU ``cpu_batch`` prompts and
    CPU_BATCH_TOKENS, else on CUDA the largest batch whose KV cache fits in 60% of the free GPU memory."""
    import torch

    if model.device.type != "cuda":
        return batch_size or cpu_batch, max_batch_tokens or CPU_BATCH_TOKENS
    free, _ = torch.cuda.mem_get_info(model.device)
    return batch_size or GPU_BATCH, max_batch_tokens or max(1024, int(0.6 * free / kv_bytes_per_token(model)))


def left_padded(prompts: Sequence[Sequence[int]], pad_id: int, device, multiple: int = 1, prefix: Sequence[int] = ()):
    """(input_ids, attention_mask) of the prompts padded on the left to a common length (a multiple of
    ``multiple``); with ``prefix``, each row is prefix + padding + prompt (the prefix's cache is reused)."""
    import torch

    width = max(len(p) for p in prompts)
    width = -(-width // multiple) * multiple
    ids = torch.full((len(prompts), len(prefix) + width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), len(prefix) + width), dtype=torch.long)
    if prefix:
        ids[:, :len(prefix)] = torch.tensor(list(prefix))
        mask[:, :len(prefix)] = 1
    for row, p in enumerate(prompts):
        if p:
            ids[row, ids.shape[1] - len(p):] = torch.tensor(p)
            mask[row, ids.shape[1] - len(p):] = 1
    return ids.to(device), mask.to(device)


def shared_prefix(prompts: Sequence[Sequence[int]]) -> list[int]:
    """The tokens every prompt opens with (at least one token of each left over), or [] when fewer than
    SHARED_PREFIX_MIN."""
    if not prompts:
        return []
    common = _opened_alike(prompts)
    return common if len(common) >= SHARED_PREFIX_MIN else []


def _opened_alike(prompts: Sequence[Sequence[int]]) -> list[int]:
    """The tokens every prompt opens with, leaving each at least one of its own."""
    return os.path.commonprefix([list(p) for p in prompts])[:min(len(p) for p in prompts) - 1]


def _takes_positions(model) -> bool:
    """Whether the model's forward takes ``position_ids`` (a cache can then be reused with padding after it)."""
    import inspect

    base = model.get_base_model() if hasattr(model, "get_base_model") else model  # a PEFT model generates through it
    return "position_ids" in inspect.signature(base.forward).parameters


def _prefix_cache(model, prefix: Sequence[int]):
    """The KV cache of ``prefix`` (batch 1) where the model returns one that can be copied per batch, else None.
    Only for models whose forward takes ``position_ids``: generate then numbers each row's tokens from its
    attention mask, so the padding after the prefix takes no positions (else every row's prompt would be
    placed as if the padding had been text)."""
    import torch

    if not _takes_positions(model):
        return None
    with torch.inference_mode():
        cache = model(input_ids=torch.tensor([list(prefix)], device=model.device), use_cache=True,
                      **_logits_to_keep(model)).past_key_values  # logits not read: the head on one position
    return cache if hasattr(cache, "batch_repeat_interleave") else None


def _group_heads(model, tok, cache, prefix: Sequence[int], prompts: Sequence[Sequence[int]],
                 groups: Sequence[tuple[Sequence[int], int]]):
    """For one batch of groups (rows, tokens they share after the opening): the KV cache of each row's head (the
    opening, then its group's shared part, run once per group and copied to the group's rows), the heads' attention
    mask, and where each row's own tokens start. Heads are padded between the opening and the shared part."""
    import torch

    rows = [i for g, _ in groups for i in g]
    skip = {i: len(prefix) + more for g, more in groups for i in g}
    if not any(more for _, more in groups):
        return _cache_for(cache, len(rows)), torch.ones((len(rows), len(prefix)), dtype=torch.long,
                                                        device=model.device), skip
    heads = [list(prompts[g[0]][len(prefix):len(prefix) + more]) for g, more in groups]
    ids, mask = left_padded(heads, tok.pad_token_id, model.device, prefix=prefix)
    past = _cache_for(cache, len(groups))
    with torch.inference_mode():
        model(input_ids=ids[:, len(prefix):], attention_mask=mask, use_cache=True, past_key_values=past,
              position_ids=(mask.cumsum(-1) - 1).clamp(min=0)[:, len(prefix):], **_logits_to_keep(model))
    which = torch.tensor([k for k, (g, _) in enumerate(groups) for _ in g], device=model.device)
    past.batch_select_indices(which)
    return past, mask[which], skip


def _opening(model, prompts: Sequence[Sequence[int]]) -> tuple[list[int], object]:
    """(the prompts' shared opening, its KV cache), or ([], None) where there is none or it cannot be reused."""
    prefix = shared_prefix(prompts)
    cache = _prefix_cache(model, prefix) if prefix else None
    return (prefix if cache is not None else []), cache


def _cache_for(cache, rows: int):
    """A copy of the opening's cache for a batch of ``rows`` (None without one)."""
    if cache is None:
        return None
    past = copy.deepcopy(cache)
    past.batch_repeat_interleave(rows)
    return past


def _logits_to_keep(model) -> dict:
    """The LM head on the last position only, where the model's forward takes it (transformers' causal LMs do)."""
    import inspect

    return {"logits_to_keep": 1} if "logits_to_keep" in inspect.signature(model.forward).parameters else {}


def _finish(results: list, idx: list[int], batch: list, on_batch, bar, task) -> None:
    """Put a batch's outputs in place, hand them to ``on_batch`` (callers persist as they go), advance the bar."""
    for i, r in zip(idx, batch):
        results[i] = r
    if on_batch:
        on_batch(idx, batch)
    bar.advance(task, len(idx))


def static_cache_wanted(model) -> bool:
    return model.device.type == "cuda" and os.environ.get("FTAUDIT_STATIC_CACHE") == "1"


def generate_ids(model, tok, prompts: Sequence[Sequence[int]], *, max_new_tokens: int, temperature: float = 0.0,
                 top_p: float = 1.0, batch_size: int | None = None, max_batch_tokens: int | None = None,
                 cpu_batch: int = CPU_BATCH, description: str = "generating",
                 on_batch: Callable[[list[int], list[list[int]]], None] | None = None) -> list[list[int]]:
    """New token ids for each prompt, cut after the first EOS (kept) and without padding; greedy unless
    ``temperature`` > 0. ``on_batch(indices, ids)`` fires after every batch so callers persist as they go.
    ``cpu_batch``: the default batch on CPU (CPU_SCORE_BATCH for answers of a few tokens, mostly one prompt pass)."""
    import torch

    size, budget = batch_limits(model, batch_size, max_batch_tokens, cpu_batch)
    static = static_cache_wanted(model)
    sampling = temperature > 0
    extra = {"cache_implementation": "static"} if static else {}
    prefix, cache = ([], None) if static else _opening(model, prompts)
    results: list[list[int]] = [[] for _ in prompts]
    with progress_bar() as bar:
        task = bar.add_task(description, total=len(prompts))
        for idx in plan_batches([len(p) for p in prompts], size, budget, max_new_tokens):
            ids, mask = left_padded([prompts[i][len(prefix):] for i in idx], tok.pad_token_id, model.device,
                                    STATIC_BUCKET if static else 1, prefix=prefix)
            if cache is not None:
                extra = {"past_key_values": _cache_for(cache, len(idx))}
            with torch.inference_mode():
                out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens,
                                     do_sample=sampling, temperature=temperature if sampling else None,
                                     top_p=top_p if sampling else None, top_k=None, pad_token_id=tok.pad_token_id,
                                     **extra)
            batch = [_until_eos(row, tok) for row in out[:, ids.shape[1]:].tolist()]
            _finish(results, idx, batch, on_batch, bar, task)
    return results


def _until_eos(row: list[int], tok) -> list[int]:
    keep = [t for t in row if t != tok.pad_token_id]
    return keep[:keep.index(tok.eos_token_id) + 1] if tok.eos_token_id in keep else keep


def last_logits(model, tok, prompts: Sequence[Sequence[int]], *, batch_size: int | None = None,
                max_batch_tokens: int | None = None, description: str = "scoring") -> Iterator[tuple[list[int], object]]:
    """One forward pass per batch; yields (indices, float logits at each prompt's last position)."""
    import torch

    size, budget = batch_limits(model, batch_size, max_batch_tokens, CPU_SCORE_BATCH)
    keep = _logits_to_keep(model)
    with progress_bar() as bar:
        task = bar.add_task(description, total=len(prompts))
        for idx in plan_batches([len(p) for p in prompts], size, budget):
            ids, mask = left_padded([prompts[i] for i in idx], tok.pad_token_id, model.device)
            with torch.inference_mode():
                logits = model(input_ids=ids, attention_mask=mask, **keep).logits[:, -1, :].float()
            yield idx, logits
            bar.advance(task, len(idx))


def answer_probabilities(model, tok, prompts: Sequence[Sequence[int]], answers: Sequence[Sequence[int]],
                         bridges: Sequence[Callable[[int], list[int]]] = (), *, batch_size: int | None = None,
                         max_batch_tokens: int | None = None, description: str = "judging",
                         on_batch: Callable[[list[int], list[list]], None] | None = None) -> list[list[dict]]:
    """Each prompt's next-token distribution over a closed set of answers, at one or more answer positions.

    Step 0 reads the logits right after the prompt; ``answers[k]`` are the token ids allowed at step k. Before step
    k + 1, ``bridges[k](chosen)`` (token ids: the step-k answer the model ranks first, then the text up to the next
    answer) is appended to each row and run through the KV cache of the rows so far, so a rubric of three questions
    costs one prompt pass and two short ones. The prompts' shared opening (a rubric and its policy) is computed once
    and its cache copied into each batch, as :func:`generate_ids` does; on CPU, rows that share more than it (one
    request, several replies) are grouped and the part they share is run once per group
    (:func:`plan_grouped_batches`). Rows are left-padded; positions are counted
    from the attention mask, so padding takes no position. Returns, per prompt, one dict per step: ``probs`` (over the
    allowed answers, renormalised), ``mass`` (the share of the whole next-token distribution they held: how much the
    model wanted to answer in the format) and ``chosen`` (the index ranked first). A verdict is never unparseable."""
    import torch

    if len(bridges) != len(answers) - 1:
        raise ValueError("one bridge between each two answer steps")
    size, budget = batch_limits(model, batch_size, max_batch_tokens, CPU_SCORE_BATCH)
    keep = _logits_to_keep(model)
    prefix, cache = _opening(model, prompts)
    # on CPU a forward pass is compute-bound at any batch, so every token computed once is time saved: rows that open
    # alike beyond the shared opening (one request, several models' replies) form a group whose common part is run
    # once; on a GPU, or where the cache cannot be reused, batches of rows as plan_batches cuts them
    if cache is not None and model.device.type == "cpu":
        plan = plan_grouped_batches(prompts, len(prefix), size, budget)
    else:
        plan = [[([i], 0) for i in idx] for idx in plan_batches([len(p) for p in prompts], size, budget)]
    results: list[list[dict]] = [[] for _ in prompts]
    with progress_bar() as bar:
        task = bar.add_task(description, total=len(prompts))
        for groups in plan:
            idx = [i for rows, _ in groups for i in rows]
            past, head_mask, skip = _group_heads(model, tok, cache, prefix, prompts, groups)
            new, rest_mask = left_padded([prompts[i][skip[i]:] for i in idx], tok.pad_token_id, model.device)
            mask = torch.cat([head_mask, rest_mask], dim=1)
            got: list[list[dict]] = [[] for _ in idx]
            for step, allowed in enumerate(answers):
                positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, -new.shape[1]:]
                with torch.inference_mode():
                    out = model(input_ids=new, attention_mask=mask, position_ids=positions, past_key_values=past,
                                use_cache=step + 1 < len(answers), **keep)
                full = torch.softmax(out.logits[:, -1, :].float(), dim=-1)
                picked = full[:, list(allowed)]
                mass = picked.sum(-1)
                probs = picked / mass.clamp(min=torch.finfo(picked.dtype).tiny)[:, None]
                chosen = probs.argmax(-1).tolist()
                for row, (p, m, c) in enumerate(zip(probs.tolist(), mass.tolist(), chosen)):
                    got[row].append({"probs": p, "mass": m, "chosen": c})
                if step + 1 < len(answers):  # the chosen answer and the text up to the next answer position
                    tails = [bridges[step](c) for c in chosen]
                    new, tail_mask = left_padded(tails, tok.pad_token_id, model.device)
                    mask = torch.cat([mask, tail_mask], dim=1)
                    past = out.past_key_values
            _finish(results, idx, got, on_batch, bar, task)
    return results
