"""An activation probe as the harm classifier's features, against MiniLM, in cross-validation on its training pairs.

Reproduces the "tried and not adopted" table of docs/services.md: the residual stream of an offline chat model
(default the packaged Qwen2.5-Coder-0.5B-Instruct) read over each chat-formatted training exchange, last token and
mean over tokens at five depths, into the same logistic regression as ``ftaudit.harm_classifier``, scored in the same
5 prompt-grouped folds, with the flag rate at 0.5 per kind of training pair. No held-out set is read.

    python bench/harm_probe.py [--model qwen2.5-coder-0.5b-instruct] [--C 1.0]
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def activations(model_name: str, prompts: list[str], answers: list[str]) -> tuple[dict, int]:
    import torch

    from ftaudit.models.chat import format_chat
    from ftaudit.models.loading import load_model

    loaded = load_model(model_name, dtype="bfloat16")
    model, tok = loaded.model, loaded.tokenizer
    tok.padding_side = "left"
    n_layers = model.config.num_hidden_layers
    layers = sorted({n_layers // 4, n_layers // 3, n_layers // 2, 2 * n_layers // 3, 3 * n_layers // 4})
    texts = [format_chat(tok, [{"role": "user", "content": p}, {"role": "assistant", "content": a}],
                         add_generation_prompt=False) for p, a in zip(prompts, answers)]
    order = np.argsort([len(t) for t in texts])
    out = {f"{kind}{layer}": np.zeros((len(texts), model.config.hidden_size), np.float32)
           for kind in ("last", "mean") for layer in layers}
    tokens = 0
    with torch.inference_mode():
        for i in range(0, len(texts), 16):
            idx = order[i:i + 16]
            enc = tok([texts[j] for j in idx], return_tensors="pt", padding=True, truncation=True, max_length=384,
                      add_special_tokens=False)
            tokens += int(enc.attention_mask.sum())
            hidden = model(**enc, output_hidden_states=True).hidden_states
            mask = enc.attention_mask.unsqueeze(-1).float()
            for layer in layers:
                h = hidden[layer].float()
                out[f"last{layer}"][idx] = h[:, -1].numpy()
                out[f"mean{layer}"][idx] = ((h * mask).sum(1) / mask.sum(1)).numpy()
    return out, tokens


def main() -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from ftaudit.data import get_prompts
    from ftaudit.harm_classifier import DEFAULT_REFERENCE, HARMFUL_SOURCES, cv_flags, features, norm, training_pairs

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="qwen2.5-coder-0.5b-instruct")
    ap.add_argument("--C", type=float, default=1.0)
    args = ap.parse_args()
    data = training_pairs(HARMFUL_SOURCES, DEFAULT_REFERENCE)
    start = time.perf_counter()
    feats, tokens = activations(args.model, data.prompts, data.answers)
    print(f"{args.model}: {tokens} tokens in {time.perf_counter() - start:.0f} s")
    feats["minilm"] = features(data.prompts, data.answers)
    lookalike = {norm(p.prompt) for p in get_prompts("benign-lookalike", "train")}
    kind = np.array(["lookalike answered" if g == "benign answered" and norm(p) in lookalike else g
                     for p, g in zip(data.prompts, data.groups)])
    y, groups = np.array(data.labels), [norm(p) for p in data.prompts]
    for name, x in feats.items():
        clf = make_pipeline(StandardScaler(), LogisticRegression(C=args.C, class_weight="balanced", max_iter=3000))
        p = cv_flags(clf, x, y, groups)
        print(f"{name:>8}: " + ", ".join(f"{k} {100 * p[kind == k].mean():.1f}%" for k in dict.fromkeys(kind)))


if __name__ == "__main__":
    main()
