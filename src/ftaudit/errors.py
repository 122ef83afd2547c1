"""The one exception type a user can cause; the CLI prints its message as one line."""


class FtauditError(Exception):
    """An error the user can fix: bad path, malformed row, unknown name, checksum mismatch."""
