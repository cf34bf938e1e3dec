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


class Counts(dict):
    """Counters of what was read and what was bad input, by name; JSON-ready as they are.

    ``Counts("files", "rows")`` starts those counters at 0 (keys keep that order); ``a + b`` adds
    counter by counter, keeping every key of both; a missing key reads as 0 when incremented
    through :meth:`add`.
    """

    def __init__(self, *names: str, **values: int):
        super().__init__({name: 0 for name in names})
        for name, value in values.items():
            self[name] = int(value)

    def add(self, name: str, n: int = 1) -> None:
        self[name] = self.get(name, 0) + int(n)

    def __add__(self, other: dict) -> Counts:
        total = Counts(**self)
        for name, value in other.items():
            total.add(name, value)
        return total
