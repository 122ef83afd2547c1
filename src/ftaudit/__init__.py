"""ftaudit: fine-tuning risk assessment for chat language models."""

__version__ = "0.1.0"

# Evaluations judge with both by default: keyword is the studies' metric (comparable with the papers), refusal-cues
# the offline judge that agrees best with labelled replies; reports flag figures where the two differ by > 10 points.
# (Here rather than in ftaudit.judges so that the CLI's --help does not import the judges.)
DEFAULT_EVAL_JUDGES = ("keyword", "refusal-cues")
