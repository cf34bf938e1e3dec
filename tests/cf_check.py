"""A CF-conventions check of a Zarr store, as a tool that knows nothing of latentsky reads it.

cf-xarray finds the coordinates and axes by their CF attributes (as Panoply or a netCDF user
would); the rest checks the raw attributes, before xarray decodes anything:

- the global ``Conventions`` names a CF version, and ``title``, ``source``,
  ``coordinate_system`` and ``acknowledgement`` are present;
- every coordinate and data variable has a ``long_name``; every numeric one ``units`` (a UDUNITS
  string: for times ``<unit> since <epoch>`` with a ``calendar``);
- every ``standard_name`` is one of the CF standard-name table's (those the stores use);
- latitude and longitude say they are geographic, in degrees_north and degrees_east;
- structured attributes are JSON, never a Python repr;
- one-dimensional coordinates are stored in a single chunk.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import cf_xarray  # noqa: F401  (registers the .cf accessor)
import numpy as np
import xarray as xr
import zarr

#: Entries of the CF standard-name table (version 84) that the stores may use.
CF_STANDARD_NAMES = {
    "time",
    "latitude",
    "longitude",
    "projection_x_coordinate",
    "projection_y_coordinate",
}
_TIME_UNITS = re.compile(
    r"^(nanoseconds|microseconds|milliseconds|seconds|minutes|hours|days) since \d{4}-\d{2}-\d{2}"
)
_REPR = re.compile(r"^\s*[\[{(].*'")  # a Python repr: brackets with single-quoted strings


def _attribute_problems(where: str, attrs: dict) -> list[str]:
    problems = []
    for key, value in attrs.items():
        if isinstance(value, dict):
            problems.append(f"{where}: attribute {key} is a mapping, not a JSON string")
        elif isinstance(value, str) and value.startswith(("[", "{")):
            try:
                json.loads(value)
            except json.JSONDecodeError:
                problems.append(f"{where}: attribute {key} is not JSON: {value[:60]!r}")
        if isinstance(value, str) and _REPR.match(value):
            problems.append(f"{where}: attribute {key} looks like a Python repr: {value[:60]!r}")
    return problems


def cf_problems(path: str | Path) -> list[str]:
    """Everything that keeps the store at ``path`` from reading as CF; empty when it does."""
    path = Path(path)
    problems = []
    raw = xr.open_zarr(path, consolidated=True, decode_cf=False)
    decoded = xr.open_zarr(path, consolidated=True)
    conventions = str(raw.attrs.get("Conventions", ""))
    if not conventions.startswith("CF-"):
        problems.append(f"Conventions is {conventions!r}")
    for key in ("title", "source", "coordinate_system", "acknowledgement"):
        if not raw.attrs.get(key):
            problems.append(f"global attribute {key} missing")
    problems += _attribute_problems("global", dict(raw.attrs))
    for name, var in raw.variables.items():
        attrs = var.attrs
        problems += _attribute_problems(str(name), dict(attrs))
        if not attrs.get("long_name"):
            problems.append(f"{name}: no long_name")
        standard = attrs.get("standard_name")
        if standard is not None and standard not in CF_STANDARD_NAMES:
            problems.append(f"{name}: standard_name {standard!r} is not a CF standard name")
        is_time = np.issubdtype(decoded[name].dtype, np.datetime64)
        if is_time:
            if not _TIME_UNITS.match(str(attrs.get("units", ""))) or "calendar" not in attrs:
                problems.append(f"{name}: time without CF units and calendar ({attrs})")
        elif var.dtype.kind in "fiub" and not attrs.get("units"):
            problems.append(f"{name}: no units")
        if standard in ("latitude", "longitude"):
            expected = "degrees_north" if standard == "latitude" else "degrees_east"
            if attrs.get("units") != expected:
                problems.append(f"{name}: units {attrs.get('units')!r}, not {expected}")
            if "geographic" not in (attrs.get("long_name", "") + attrs.get("comment", "")):
                problems.append(f"{name}: does not say it is geographic")
    # What a CF-aware reader finds: a time axis, and latitude/longitude where the grid has them.
    if "time" in decoded.coords and "T" not in decoded.cf.axes:
        problems.append(f"cf-xarray finds no time axis: {decoded.cf.axes}")
    if "lat" in decoded.dims:
        found = decoded.cf.coordinates
        if found.get("latitude") != ["lat"] or found.get("longitude") != ["lon"]:
            problems.append(f"cf-xarray finds coordinates {found}")
    group = zarr.open_group(path, mode="r")
    for name in decoded.coords:
        array = group[name]
        if array.ndim == 1 and array.shape[0] and array.chunks != array.shape:
            problems.append(f"{name}: {array.shape[0]} values in chunks of {array.chunks}")
    return problems


def assert_cf(path: str | Path) -> None:
    problems = cf_problems(path)
    assert not problems, f"{path}:\n" + "\n".join(problems)
