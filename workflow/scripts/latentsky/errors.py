"""Errors that name the thing that was wrong (file, key, URL, line)."""

from __future__ import annotations


class BadInputError(ValueError):
    """An input file (or a part of it) that cannot be used.

    The message always names the file, and the line/frame/variable where that is known, so that a
    user can find the culprit in an archive of thousands of files.
    """

    def __init__(self, path, reason: str, *, where: str | None = None):
        self.path = str(path)
        self.reason = reason
        self.where = where
        location = f"{self.path}" + (f" ({where})" if where else "")
        super().__init__(f"{location}: {reason}")
