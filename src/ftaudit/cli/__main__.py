"""``python -m ftaudit.cli``: the same as the ``ftaudit`` command."""

from . import app

app()
