"""The command line: a thin Typer layer over the library, one module per command group. Each command parses its
options, makes one library call (mostly :mod:`ftaudit.api`) and prints; a user error is one line and exit code 2.

* :mod:`.training`     align, attack, defend
* :mod:`.evaluation`   eval, report, judge, judges (list, validate, compare)
* :mod:`.experiments`  quickstart, run
* :mod:`.services`     screen, audit-job, gate
* :mod:`.data`         fetch, serve, datasets (list, show)
"""

from .app import app

# isort: off
from . import experiments, evaluation, training, services, data  # noqa: F401,E402  (registers the commands; --help lists them in this order)
# isort: on

__all__ = ["app"]
