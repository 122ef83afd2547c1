"""ftaudit: fine-tuning risk assessment for chat language models.

The main jobs as Python functions (see :mod:`ftaudit.api` and docs/python-api.md)::

    import ftaudit

    run = ftaudit.evaluate("runs/align/model", "runs/eval", datasets=["advbench@40"])
    decision = ftaudit.gate("runs/eval", max_over_refusal=0.2)
"""

from .defaults import DEFAULT_EVAL_JUDGES, __version__

# the API is imported on first use, so `import ftaudit` (and the CLI's --help) stays light
_API = ("GateResult", "RunResult", "ScreenResult", "TrainedModel", "align", "attack", "audit_job", "evaluate", "gate",
        "plan", "quickstart", "run_spec", "screen", "validate_judges")


def __getattr__(name: str):
    if name in _API:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'ftaudit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])


__all__ = ["DEFAULT_EVAL_JUDGES", "__version__", *_API]
