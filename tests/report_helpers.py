"""Reading a `snakemake --report` file as a person would: its embedded pages and their tables."""

from __future__ import annotations

import base64
import re
from html.parser import HTMLParser

import numpy as np
import pandas as pd


def embedded_files(html: str) -> list[tuple[str, bytes]]:
    """(mime type, content) of every file the report embeds as a base64 data URI."""
    found = re.findall(r"data:([\w.+/-]+)(?:;[\w=.-]+)*;base64,([A-Za-z0-9+/=]+)", html)
    return [(mime, base64.b64decode(data)) for mime, data in found]


class _Tables(HTMLParser):
    """The tables of an HTML page that carry the attribute ``key``, by its value, as lists of
    rows of cell texts."""

    def __init__(self, key: str):
        super().__init__(convert_charrefs=True)
        self.key = key
        self.tables: dict[str, list[list[str]]] = {}
        self.current = self.row = self.cell = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table" and self.key in attrs:
            self.current = self.tables.setdefault(attrs[self.key], [])
        elif tag == "tr" and self.current is not None:
            self.row = []
            self.current.append(self.row)
        elif tag in ("td", "th") and self.row is not None:
            self.cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self.cell is not None:
            self.row.append("".join(self.cell).strip())
            self.cell = None
        elif tag == "table":
            self.current = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell.append(data)


def table_rows(text: str, key: str = "id") -> dict[str, list[list[str]]]:
    """The rows (header first) of each table of a page with the attribute ``key``, by its
    value, as text cells."""
    parser = _Tables(key)
    parser.feed(text)
    return parser.tables


def html_tables(text: str) -> dict[str, pd.DataFrame]:
    """Every ``data-table`` table of a page as a DataFrame (first row: the header)."""
    frames = {}
    for name, rows in table_rows(text, "data-table").items():
        frame = pd.DataFrame(rows[1:], columns=rows[0]).replace("", np.nan)
        for column in frame:
            try:
                frame[column] = pd.to_numeric(frame[column])
            except (ValueError, TypeError):
                pass  # text
        frames[name] = frame
    return frames


def report_pages(html: str) -> dict[str, str]:
    """Every HTML page the report embeds (the report_* rules' tables), by its ``<title>``."""
    pages = {}
    for mime, content in embedded_files(html):
        if mime == "text/html":
            text = content.decode("utf-8", "replace")
            title = re.search(r"<title>(.*?)</title>", text, re.S)
            if title:
                pages[title.group(1).strip()] = text
    return pages
