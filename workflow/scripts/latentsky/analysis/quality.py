"""The data-quality page of the report: gaps, failures and bad input, each in its own table.

:func:`quality_page` renders the ``gaps``, ``failures`` and ``bad_input`` sections of a run's
summary (:func:`latentsky.analysis.summary.summarise`) as one self-contained HTML page, which
``summarise_results`` writes beside ``summary.json`` and ``snakemake --report`` shows under "Data
quality". It says the same as the summary, number for number.
"""

from __future__ import annotations

import html
import json

_STYLE = (
    "body{font-family:sans-serif;font-size:14px;margin:1em}"
    "table{border-collapse:collapse;margin:0.5em 0 1.5em}"
    "th,td{border:1px solid #bbb;padding:3px 8px;text-align:left;vertical-align:top}"
    "td.n{text-align:right}"
)

#: What each table holds, as the page says it.
SECTIONS = {
    "gaps": "Gaps: what the archives positively lack (a 404, or a listing without the file or "
    "folder). Counts by kind of file, then each reason.",
    "failures": "Failures: files and listings the archives answered wrongly after every retry, "
    "with the fault and the part of each that could be kept (none if empty).",
    "bad_input": "Bad input: unreadable files, damaged frames or rows and records out of place, "
    "skipped; each count counts the culprits.",
}


def _cell(value) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        return f"<td>{html.escape(text)}</td>"
    return f'<td class="n">{value}</td>'


def _table(header: list[str], rows: list[list], section: str) -> str:
    if not rows:
        return f'<p id="{section}-none">None.</p>'
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in rows)
    return f'<table id="{section}"><tr>{head}</tr>{body}</table>'


def quality_page(dataset: str, summary: dict) -> str:
    """The HTML page of ``summary``'s gaps, failures and bad-input counts, apart."""
    gaps, reasons = [], []
    for role, counts in summary.get("gaps", {}).items():
        for key, value in counts.items():
            if key == "reasons":
                reasons += [[role, reason, n] for reason, n in value.items()]
            else:
                gaps.append([role, key, value])
    failed = [
        [role, row["url"], row["reason"], row["salvaged"]]
        for role, rows in summary.get("failures", {}).items()
        for row in rows
    ]
    bad = [
        [store, key, value]
        for store, counts in summary.get("bad_input", {}).items()
        for key, value in counts.items()
    ]
    parts = [
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Data quality: "
        f"{html.escape(dataset)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>Data quality of dataset {html.escape(dataset)}</h1>",
        f"<h2>Gaps</h2><p>{SECTIONS['gaps']}</p>",
        _table(["files", "count", "number"], gaps, "gaps"),
        _table(["files", "reason", "number"], reasons, "gap-reasons"),
        f"<h2>Failures</h2><p>{SECTIONS['failures']}</p>",
        _table(["files", "URL", "fault", "kept"], failed, "failures"),
        f"<h2>Bad input</h2><p>{SECTIONS['bad_input']}</p>",
        _table(["store", "count", "number"], bad, "bad-input"),
        "</body></html>\n",
    ]
    return "\n".join(parts)
