"""The one exception type a user can cause; the CLI prints its message as one line."""


class FtauditError(Exception):
    """An error the user can fix: bad path, malformed row, unknown name, checksum mismatch."""


def validation_message(exc, prefix: str = "") -> str:
    """The first problem of a pydantic ``ValidationError`` as ``field.path: reason (got VALUE)``."""
    err = exc.errors()[0]
    where = prefix
    for part in err["loc"]:
        where += f"[{part}]" if isinstance(part, int) else (f".{part}" if where else str(part))
    if err["type"] == "extra_forbidden":
        return f"{where}: unknown field"
    if err["type"] == "missing":
        return f"{where}: required"
    if err["type"] == "value_error":  # our own validators' messages are already complete
        return f"{where}: {err['ctx']['error']}"
    got = err.get("input")
    shown = f" (got {got!r})" if isinstance(got, (str, int, float, bool)) or got is None else ""
    return f"{where}: {err['msg'][0].lower()}{err['msg'][1:]}{shown}"
