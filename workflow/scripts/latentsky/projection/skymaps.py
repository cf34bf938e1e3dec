"""The right skymap for the right imager: which projection each image file takes.

A skymap belongs to one imager of one site (UCalgary skymaps carry ``SITE_UID`` and
``IMAGER_UID``) and is valid from a date (``VALID_INTERVAL_START``, until ``VALID_INTERVAL_STOP``
or a newer skymap of the same imager). When a site's imager is swapped, its frames come from
another folder (``gako_themis20`` becomes ``gako_themis21``), possibly both on one day. Each file
is therefore projected with the newest skymap *of its own imager* valid on its date, its imager
being what its own metadata says (PGM ``Imager unique ID``, else the file name). A skymap that
names no imager (the Berkeley calibration CDF) serves any imager of its site; a file that names
no imager (a Berkeley level-1 CDF) takes the newest skymap valid on its date.

The identities are checked, not assumed: a skymap of another site, a file whose metadata names
another site, or whose header and name disagree about the imager, and a file without a skymap of
its imager valid on its date all raise :class:`~latentsky.errors.BadInputError` naming the file.
These are not bad input to skip: projecting with the wrong geometry would put every pixel in the
wrong place, so the run refuses whatever ``on_bad_input`` says.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path

from latentsky.errors import BadInputError

_NAME_IMAGER = re.compile(r"_(?P<site>[a-z]{4})_(?P<imager>themis\d{2})_")


@dataclass(frozen=True)
class SkymapEntry:
    """What the choice needs to know of one skymap (from its operator file's metadata)."""

    name: str
    site: str = ""
    imager: str = ""
    valid_from: dt.date | None = None
    valid_to: dt.date | None = None

    def valid_on(self, day: dt.date) -> bool:
        return (self.valid_from is None or self.valid_from <= day) and (
            self.valid_to is None or day <= self.valid_to
        )

    @classmethod
    def from_metadata(cls, name: str, metadata: dict) -> SkymapEntry:
        def date(key):
            value = metadata.get(key)
            return dt.date.fromisoformat(value) if value else None

        return cls(
            name=name,
            site=metadata.get("skymap_site", "") or "",
            imager=metadata.get("imager", "") or "",
            valid_from=date("valid_from"),
            valid_to=date("valid_to"),
        )


def check_skymap_site(path, skymap_site: str, site: str) -> None:
    """A skymap that names its site must name the dataset's (BadInputError naming the file)."""
    if skymap_site and skymap_site.lower() != site.lower():
        raise BadInputError(
            path, f"skymap of site {skymap_site!r} (SITE_UID), but it was fetched for site {site!r}"
        )


def choose_skymap(
    path, day: dt.date, site: str, imager: str, entries: list[SkymapEntry]
) -> SkymapEntry:
    """The skymap for the file ``path`` of ``day`` at ``site``, whose metadata names ``imager``
    (empty: it names none). See the module docstring; BadInputError naming the file when none
    fits."""
    valid = [entry for entry in entries if entry.valid_on(day) and entry.site in ("", site)]
    if imager:
        own = [entry for entry in valid if entry.imager == imager]
        candidates = own or [entry for entry in valid if not entry.imager]
    else:
        candidates = valid
    if not candidates:
        listed = ", ".join(
            f"{e.name} ({e.imager or 'any imager'}, from {e.valid_from or 'always'})"
            for e in entries
        )
        raise BadInputError(
            path,
            f"no skymap of imager {imager or '(unnamed)'} at {site} is valid on {day} "
            f"(skymaps: {listed or 'none'}); refusing to project it with another imager's",
        )
    return max(candidates, key=lambda e: (e.valid_from or dt.date.min, e.name))


@dataclass
class SkymapChooser:
    """Chooses, checks and loads the projection of each file of one site and date.

    ``load(entry) -> (operator, fov_mask)`` reads an operator; each is read once. Call it as
    ``chooser(path, read)`` with a file and its :class:`~latentsky.instruments.themis.FrameRead`
    (the ``operators`` argument of :func:`latentsky.samples.images.ingest_files`).
    """

    site: str
    day: dt.date
    entries: list[SkymapEntry]
    load: object
    _cache: dict = field(default_factory=dict)

    def __call__(self, path, read) -> tuple:
        named = _NAME_IMAGER.search(Path(path).name)
        if read.site and read.site != self.site:
            raise BadInputError(
                path, f"its metadata names site {read.site!r}, not the dataset's {self.site!r}"
            )
        if named and named["site"] != self.site:
            raise BadInputError(path, f"its name is of site {named['site']!r}, not {self.site!r}")
        if named and read.imager and named["imager"] != read.imager:
            raise BadInputError(
                path,
                f"its metadata names imager {read.imager!r}, its name {named['imager']!r}",
            )
        imager = read.imager or (named["imager"] if named else "")
        entry = choose_skymap(path, self.day, self.site, imager, self.entries)
        if entry.name not in self._cache:
            self._cache[entry.name] = self.load(entry)
        operator, fov_mask = self._cache[entry.name]
        return operator, fov_mask, entry.name


def site_operators(
    site: str, day: dt.date, skymap_names, folder
) -> tuple[SkymapChooser, object, dict]:
    """The projection of one site and date from the operators built for its skymaps.

    ``skymap_names``: the site's skymap files (their operators are ``folder/<name>.npz``, from
    :func:`latentsky.projection.geometry.save_operator`). Returns a :class:`SkymapChooser` over
    them, the grid they share, and metadata for the projected store: the first operator's, with
    ``imager`` naming every imager among them (comma-separated; None when none says).
    """
    from latentsky.projection.geometry import load_operator  # numba: imported only when used

    operators = {name: load_operator(Path(folder) / f"{name}.npz") for name in skymap_names}
    if not operators:
        raise BadInputError(folder, f"no skymap of site {site!r} to project with")
    entries = [SkymapEntry.from_metadata(name, loaded[3]) for name, loaded in operators.items()]
    chooser = SkymapChooser(site, day, entries, load=lambda entry: operators[entry.name][:2])
    _, _, grid, meta = next(iter(operators.values()))
    imagers = sorted({m["imager"] for *_, m in operators.values() if m.get("imager")})
    return chooser, grid, {**meta, "imager": ", ".join(imagers) or None}
