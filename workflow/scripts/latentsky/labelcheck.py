"""Labels CSV checks (time, site, label per row), naming the file and the line.

Only the standard library is used: the Snakefile checks an existing labels CSV before any job
(through :mod:`latentsky.config`), and the rules that read labels check them again.
"""

from __future__ import annotations

import csv
import datetime as dt
import re

from latentsky.errors import BadInputError

#: The six OATH classes of hand-labelled all-sky images.
OATH_CLASSES = ("arc", "diffuse", "discrete", "moon", "clear", "cloudy")


class LabelsError(BadInputError):
    """A labels CSV that cannot be used; the message names the file and the line."""


def parse_label_time(text: str) -> dt.datetime:
    """A label's time (ISO 8601; with a zone it is converted to UTC) as a naive UTC datetime."""
    text = text.strip()
    # Python reads at most microseconds: finer digits (a nanosecond clock) are cut, not refused.
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    value = dt.datetime.fromisoformat(text)
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return value


def check_labels_csv(
    path,
    classes: set[str] | None = None,
    sites: list[str] | None = None,
    span: tuple | None = None,
) -> list[tuple[dt.datetime, str, str]]:
    """Read and check a labels CSV (columns ``time``, ``site``, ``label``); return its rows as
    (UTC time, site, label) in lower case.

    Every row must have a time that parses (ISO 8601), a site (one of ``sites`` when given) and a
    label (one of ``classes`` when given); with ``span`` = (start, end, (first hour, last hour)) its
    time must lie in [start, end) and within those UT hours.

    Raises:
        LabelsError: naming the file and the line (the header is line 1).
    """
    rows, first_line = [], {}
    try:
        # utf-8-sig: a byte-order mark (spreadsheet exports write one) is not part of the header.
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            if reader.fieldnames:
                reader.fieldnames = [name.strip().lower() for name in reader.fieldnames]
            missing = {"time", "site", "label"} - set(reader.fieldnames or [])
            if missing:
                raise LabelsError(path, f"lacks the column(s) {sorted(missing)}", where="line 1")
            for record in reader:
                line = reader.line_num
                row = _check_label_row(path, line, record, classes, sites, span)
                # One image cannot be of two classes: which one would the scores trust?
                when, site, label = row
                earlier = first_line.setdefault((when, site), (line, label))
                if earlier[1] != label:
                    raise LabelsError(
                        path,
                        f"{site} at {when:%Y-%m-%dT%H:%M:%S.%f} is labelled {label!r} here and "
                        f"{earlier[1]!r} on line {earlier[0]}",
                        where=f"line {line}",
                    )
                rows.append(row)
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise LabelsError(path, f"cannot be read as CSV ({error})") from None
    return rows


def _check_label_row(path, line, record, classes, sites, span):
    def refuse(reason: str):
        raise LabelsError(path, reason, where=f"line {line}")

    text = (record.get("time") or "").strip()
    site = (record.get("site") or "").strip().lower()
    label = (record.get("label") or "").strip().lower()
    if not text:
        refuse("empty time")
    try:
        when = parse_label_time(text)
    except ValueError:
        refuse(f"time {text!r} does not parse (ISO 8601, e.g. 2015-01-15T06:00:03Z)")
    if not site:
        refuse("empty site")
    if not label:
        refuse("empty label")
    if sites is not None and site not in sites:
        refuse(f"site {site!r} is not a site of the dataset ({', '.join(sites)})")
    if classes is not None and label not in classes:
        refuse(f"unknown class {label!r} (known: {', '.join(sorted(classes))})")
    if span is not None:
        start, end, (first, last) = span
        if not (start <= when < end and first <= when.hour <= last):
            refuse(
                f"time {text} is outside the dataset ({start:%Y-%m-%d} to "
                f"{end - dt.timedelta(days=1):%Y-%m-%d}, {first:02d}-{last:02d} UT)"
            )
    return when, site, label
