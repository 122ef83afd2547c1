"""Defaults shared by the command line, the Python API and the library, in a module that imports nothing heavy (so
``--help`` does not load the judges)."""

__version__ = "0.1.0"

# Evaluations judge with both by default: keyword is the studies' metric (comparable with the papers), refusal-cues
# the offline judge that agrees best with labelled replies; reports flag figures where the two differ by > 10 points.
DEFAULT_EVAL_JUDGES = ("keyword", "refusal-cues")

# The held-out sets an evaluation, a spec and a customer's job use when none are named
DEFAULT_HARMFUL_SETS = ("advbench@40", "harmbench@40")
DEFAULT_BENIGN_SETS = ("benign@40",)

# Qi et al.'s harmfulness score and rate in the quickstart and the minis: the LLM judge on offline weights that agrees
# best with people's harm scores (pyrit-harm, docs/judges.md), and the model it runs on
DEFAULT_HARM_JUDGE = "harmfulness-local"
DEFAULT_HARM_JUDGE_MODEL: str | None = None  # None: the judge's own default (harmfulness-local: local_rubric.HARM_JUDGE_MODEL)
