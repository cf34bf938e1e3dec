"""CF conventions for the stores: standard attributes by variable name, JSON for structured ones.

Every store the workflow writes goes through :func:`conform` (in :mod:`latentsky.stores`), so that
a tool that knows nothing of latentsky (xarray, cf-xarray, Panoply, netCDF-C's NCZarr, Zarr.jl)
finds, for every coordinate and data variable, a ``long_name`` and ``units`` (UDUNITS strings;
"1" for dimensionless numbers), a ``standard_name`` where the CF standard-name table has one
(latitude, longitude, time, projection coordinates), and the global attributes ``Conventions``,
``title``, ``source`` and ``acknowledgement``.

What is said explicitly:

- **Geographic, not magnetic.** Latitudes and longitudes are geodetic (WGS84) geographic
  coordinates, as in the THEMIS skymaps, the CHAIN station list and the ISS ephemeris of ASIM;
  their ``long_name`` and ``comment`` say so, and the global ``coordinate_system`` attribute too.
  No store holds magnetic coordinates.
- **Structured attributes are JSON strings**, never a Python ``repr``: CF (and netCDF) attributes
  are strings or numbers, and a JSON string reads back the same in every language.
  :func:`conform` encodes any dict, or list holding dicts or lists, with :func:`json.dumps`.
- **Times** are written by xarray as integers with ``units = "<unit> since <epoch>"`` and a
  ``calendar``, which is the CF encoding of time.

Only the standard library, NumPy and xarray are used.
"""

from __future__ import annotations

import json

import numpy as np
import xarray as xr

from latentsky.jsonable import plain

#: The CF version the stores follow.
CONVENTIONS = "CF-1.10"

#: Data acknowledgements, by data provider, in the words of the providers' rules of the road
#: (check their pages for the current wording before publishing).
ACKNOWLEDGEMENTS = {
    "themis_asi": (
        "We acknowledge NASA contract NAS5-02099 and V. Angelopoulos for use of data from the "
        "THEMIS Mission; specifically S. Mende and E. Donovan for use of the ASI data, the CSA "
        "for logistical support in fielding and data retrieval from the GBO stations, and NSF "
        "for support of GIMNAST through grant AGS-1004736."
    ),
    "chain": (
        "Infrastructure funding for CHAIN (Canadian High Arctic Ionospheric Network) was "
        "provided by the Canada Foundation for Innovation and the New Brunswick Innovation "
        "Foundation. CHAIN operation is conducted in collaboration with the Canadian Space Agency."
    ),
    "asim": (
        "ASIM is a mission of ESA's SciSpace programme on the International Space Station; the "
        "MMIA photometer data were provided by the ASIM Science Data Centre."
    ),
}

#: What a coordinate called "geographic" means here (the comment on every lat/lon).
GEOGRAPHIC = "geographic (geodetic, WGS84) coordinates, not magnetic"

_LAT = {
    "standard_name": "latitude",
    "long_name": "geographic latitude",
    "units": "degrees_north",
    "comment": GEOGRAPHIC,
}
_LON = {
    "standard_name": "longitude",
    "long_name": "geographic longitude",
    "units": "degrees_east",
    "comment": GEOGRAPHIC,
}

#: Attributes of the variables the stores hold, by name. Attributes a writer set itself win.
VARIABLES: dict[str, dict] = {
    "time": {"standard_name": "time", "long_name": "time (UTC)", "axis": "T"},
    "lat": {**_LAT, "long_name": "geographic latitude of the grid cell centre", "axis": "Y"},
    "lon": {**_LON, "long_name": "geographic longitude of the grid cell centre", "axis": "X"},
    "latitude": _LAT,
    "longitude": _LON,
    "band": {"long_name": "spectral band", "units": "1"},
    "site": {"long_name": "THEMIS imager site code", "units": "1"},
    "sites": {"long_name": "THEMIS imager site code", "units": "1"},
    "image": {"long_name": "white-light counts projected onto the grid", "units": "counts"},
    "fov_mask": {
        "long_name": "grid cell inside the projected field of view",
        "units": "1",
        "flag_values": [0, 1],
        "flag_meanings": "outside inside",
    },
    "normalisation_low": {"long_name": "counts mapped to 0 in the model input", "units": "counts"},
    "normalisation_high": {"long_name": "counts mapped to 1 in the model input", "units": "counts"},
    "sigma_phi": {
        "long_name": "GNSS phase scintillation index sigma_phi (Phi60, 60 s)",
        "units": "rad",
    },
    "n_satellites": {"long_name": "number of satellites combined into sigma_phi", "units": "1"},
    "record_time": {
        "long_name": "end of the 60-s ISMR record covering the sample (UTC)",
        "standard_name": "time",
    },
    "station": {"long_name": "CHAIN GNSS station code", "units": "1"},
    "latent": {"long_name": "latent vector of the autoencoder", "units": "1"},
    "latent_dim": {"long_name": "latent dimension index", "units": "1"},
    "window": {"long_name": "window index", "units": "1"},
    "sample": {"long_name": "sample number in the window (100 kHz)", "units": "1"},
    "observation": {"long_name": "ASIM observation id", "units": "1"},
    "start_time": {"long_name": "time of the first sample of the window (UTC)"},
    "start_sample": {"long_name": "first sample of the window in its observation", "units": "1"},
    "wavelength": {"long_name": "photometer band wavelength", "units": "nm"},
    "waveform": {"long_name": "scaled photometer signal", "units": "1"},
    "baseline_flux": {"long_name": "baseline photometer flux in the window"},
    "noise_flux": {"long_name": "noise of the photometer flux in the window"},
    "peak_flux": {"long_name": "peak photometer flux in the window"},
    "rise_time_us": {"long_name": "rise time of the brightest pulse", "units": "us"},
    "duration_us": {"long_name": "duration of the brightest pulse", "units": "us"},
    "x": {"long_name": "distance east of the site along the emission shell", "units": "km"},
    "y": {"long_name": "distance north of the site along the emission shell", "units": "km"},
}


def _is_time(var: xr.Variable) -> bool:
    return np.issubdtype(var.dtype, np.datetime64)


def encode_attribute(value):
    """An attribute value as CF allows it: strings, numbers and flat lists of numbers stay;
    anything structured (a dict, or a list holding dicts or lists) becomes a JSON string."""
    value = plain(value, "attribute")
    if isinstance(value, dict) or (
        isinstance(value, list) and any(isinstance(v, dict | list) for v in value)
    ):
        return json.dumps(value, sort_keys=True)
    if isinstance(value, list) and any(isinstance(v, str) for v in value):
        return json.dumps(value)
    return value  # None (also NaN, after plain) is left out by the callers


def decode_attribute(value, default=None):
    """A structured attribute back as Python: JSON strings decoded, other values as they are."""
    if value is None:
        return default
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def variable_attrs(name: str, var: xr.Variable) -> dict:
    """The attributes ``var`` (called ``name``) should carry: the registry's, under its own."""
    attrs = {**VARIABLES.get(name, {}), **var.attrs}
    if _is_time(var):
        attrs.pop("units", None)  # written by xarray's CF time encoding
        attrs.setdefault("standard_name", "time")
        attrs.setdefault("long_name", f"{name} (UTC)")
    else:
        attrs.setdefault("long_name", name.replace("_", " "))
        if var.dtype.kind in "US" or var.dtype == object:
            attrs.pop("units", None)  # text has no units
        else:
            attrs.setdefault("units", "1")
    return encode_attributes(attrs)


def encode_attributes(attrs: dict) -> dict:
    """``attrs`` with every value encoded; unknown (None or NaN) values left out."""
    encoded = {key: encode_attribute(value) for key, value in attrs.items()}
    return {key: value for key, value in encoded.items() if value is not None}


def conform(ds: xr.Dataset, acknowledgement: str | list[str] | None = None) -> xr.Dataset:
    """``ds`` with CF attributes on every variable and on the dataset (a shallow copy).

    Adds ``Conventions`` and ``coordinate_system`` unless present (no creation time: two runs of
    one config write identical stores),
    the ``acknowledgement`` of the named providers (keys of :data:`ACKNOWLEDGEMENTS`), fills in
    ``long_name``, ``units`` and ``standard_name`` by variable name, and JSON-encodes structured
    attributes (:func:`encode_attribute`).
    """
    ds = ds.copy(deep=False)
    for name, var in ds.variables.items():
        var.attrs = variable_attrs(str(name), var)
    attrs = {
        "Conventions": CONVENTIONS,
        "coordinate_system": "geographic (WGS84); times in UTC",
        **ds.attrs,
    }
    keys = [acknowledgement] if isinstance(acknowledgement, str) else list(acknowledgement or [])
    if keys and "acknowledgement" not in attrs:
        attrs["acknowledgement"] = " ".join(ACKNOWLEDGEMENTS[key] for key in keys)
    ds.attrs = encode_attributes(attrs)
    return ds
