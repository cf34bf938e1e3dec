"""Photometer windows for the Beta VAE: MMIA frames joined into observations, cut and scaled.

The pipeline here:

1. :func:`latentsky.instruments.mmia.read_mmia_fits` reads one file into :class:`MmiaFrames`, checking every frame (bands of
   equal length, samples present, a parseable time); bad frames are skipped and counted or raise
   :class:`~latentsky.errors.BadInputError` naming the file, row and column.
2. :func:`join_observation` puts the frames of one observation in time order and joins them into
   :class:`Segment` s sampled without a break at 100 kHz: consecutive frames must abut within a
   tolerance; a gap starts a new segment, an overlap is bad input.
3. :func:`window_starts` / :func:`cut_windows` cut each segment into windows that never cross a
   segment (hence never an observation) boundary and are never reversed in time.
4. :class:`Scaling` maps fluxes into [0, 1] for the Beta likelihood (the study clipped to
   0..210 uW/m^2); :func:`windows_dataset` stacks the three bands as channels into an
   ``xarray.Dataset`` with dims ``(window, band, sample)``.

Times are ``datetime64[ns]`` UTC (naive). Shapes: a frame's flux is ``(band, n)``, windows are
``(window, band, sample)``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from latentsky.analysis.pulses import event_windows, find_pulses, noise_level, quiet_windows
from latentsky.analysis.tle import robust_noise, window_features
from latentsky.errors import BadInputError, Counts
from latentsky.instruments.mmia import (
    BAND_WAVELENGTHS,
    BANDS,
    SAMPLE_RATE_HZ,
    MmiaFrames,
    read_mmia_fits,
)
from latentsky.samples.colours import Colours

#: Default tolerance when joining frames: a timing mismatch up to this is clock jitter, not a gap.
JOIN_TOLERANCE_S = 50e-6
_NS_PER_S = 1_000_000_000


# --------------------------------------------------------------------------------------------
# Joining the frames of an observation


@dataclass(frozen=True)
class Segment:
    """A stretch of one observation sampled without a break.

    Attributes:
        observation_id: the observation.
        start_ns: time of the first sample, int64 ns since 1970 (UTC).
        flux: ``(band, n)`` float32.
        frame_centre_ns: (k,) int64 ns, centres of the frames joined here.
        frame_latitude, frame_longitude: (k,) ISS position at those centres, degrees.
        trigger_samples: sample indices (into ``flux``) of the brightest sample of each triggered
            frame; every frame counts as triggered when the files carry no trigger flags.
        sample_rate_hz: samples per second.
    """

    observation_id: int
    start_ns: int
    flux: np.ndarray
    frame_centre_ns: np.ndarray
    frame_latitude: np.ndarray
    frame_longitude: np.ndarray
    trigger_samples: np.ndarray
    sample_rate_hz: float = SAMPLE_RATE_HZ

    @property
    def n_samples(self) -> int:
        return int(self.flux.shape[1])

    def sample_times_ns(self, index) -> np.ndarray:
        """int64 ns of the samples at ``index`` (array-like of sample numbers, may be fractional)."""
        offset = np.asarray(index, dtype=np.float64) * (_NS_PER_S / self.sample_rate_hz)
        return self.start_ns + np.round(offset).astype(np.int64)

    def position_at(self, times_ns) -> tuple[np.ndarray, np.ndarray]:
        """ISS latitude, longitude (degrees) at ``times_ns``, interpolated between frame centres.

        Longitude is unwrapped before interpolating, so a segment crossing the date line does not
        sweep through 0 degrees; the result is wrapped back into [-180, 180).
        """
        t = np.asarray(times_ns, dtype=np.float64)
        centres = self.frame_centre_ns.astype(np.float64)
        ok = np.isfinite(self.frame_latitude) & np.isfinite(self.frame_longitude)
        if not ok.any():
            return np.full(t.shape, np.nan), np.full(t.shape, np.nan)
        lat = np.interp(t, centres[ok], self.frame_latitude[ok])
        lon = np.rad2deg(np.unwrap(np.deg2rad(self.frame_longitude[ok])))
        lon = np.interp(t, centres[ok], lon)
        return lat, (lon + 180.0) % 360.0 - 180.0


@dataclass
class _Frame:
    centre_ns: int
    flux: np.ndarray  # (band, n)
    latitude: float
    longitude: float
    trigger: bool
    where: str  # "file (HDU 1 row r)" for messages


def frames_of_observation(reads: Iterable[MmiaFrames], observation_id: int) -> list[_Frame]:
    """The frames of ``observation_id`` from several files' :class:`MmiaFrames`, in file order."""
    frames = []
    for read in reads:
        for k in np.flatnonzero(read.observation_id == observation_id):
            frames.append(
                _Frame(
                    centre_ns=int(read.time[k].astype("datetime64[ns]").astype(np.int64)),
                    flux=read.flux[k],
                    latitude=float(read.latitude[k]),
                    longitude=float(read.longitude[k]),
                    # Without trigger flags every frame may hold the trigger.
                    trigger=bool(read.trigger[k]) or not read.has_trigger_flags,
                    where=f"{read.path} (HDU 1 row {read.rows[k]})",
                )
            )
    return frames


def _brightest_sample(flux: np.ndarray) -> int:
    """Sample of a ``(band, n)`` frame where the bands together stand out most above their noise."""
    baseline = np.nanmedian(flux, axis=1, keepdims=True)
    noise = robust_noise(flux)[:, np.newaxis]
    return int(np.nanargmax(np.nansum((flux - baseline) / noise, axis=0)))


def join_observation(
    frames: Sequence[_Frame],
    observation_id: int,
    *,
    sample_rate_hz: float = SAMPLE_RATE_HZ,
    tolerance_s: float = JOIN_TOLERANCE_S,
    skip_bad_frames: bool = False,
) -> tuple[list[Segment], dict[str, int], list[str]]:
    """Join the frames of one observation in time order into unbroken :class:`Segment` s.

    A frame with ``n`` samples centred at ``t`` covers ``[t - n/2/fs, t + n/2/fs)``. Sorted by
    centre time, each frame must start where the previous one ends, within ``tolerance_s`` (the
    difference is clock jitter, and the samples are simply concatenated); a later start is a data
    gap and begins a new segment; an earlier start (an overlap) is bad input. A frame repeated
    with identical samples (the same frame in two files) is dropped as a duplicate.

    Returns:
        (segments in time order, counts ``{"frames", "duplicate_frames", "gaps",
        "overlapping_frames"}``, messages of skipped frames).

    Raises:
        BadInputError: (without ``skip_bad_frames``) an overlapping frame or two different frames
            at the same time, naming both files and rows.
    """
    counts = {"frames": 0, "duplicate_frames": 0, "gaps": 0, "overlapping_frames": 0}
    problems: list[str] = []
    tol_ns = int(round(tolerance_s * _NS_PER_S))
    ns_per_sample = _NS_PER_S / sample_rate_hz
    ordered = sorted(frames, key=lambda f: f.centre_ns)  # stable: file order breaks ties
    groups: list[list[_Frame]] = []
    previous: _Frame | None = None
    previous_end = 0
    for frame in ordered:
        n = frame.flux.shape[1]
        start = frame.centre_ns - int(round(n / 2 * ns_per_sample))
        if previous is not None:
            gap = start - previous_end
            if abs(frame.centre_ns - previous.centre_ns) <= tol_ns:
                same = frame.flux.shape == previous.flux.shape and np.array_equal(
                    frame.flux, previous.flux, equal_nan=True
                )
                if same:
                    counts["duplicate_frames"] += 1
                    continue
            if gap < -tol_ns:
                error = BadInputError(
                    frame.where,
                    f"frame of observation {observation_id} overlaps the previous frame "
                    f"({previous.where}) by {-gap / 1e3:.1f} us",
                )
                if not skip_bad_frames:
                    raise error
                counts["overlapping_frames"] += 1
                problems.append(str(error))
                continue
            if gap > tol_ns:
                counts["gaps"] += 1
                groups.append([])
        if not groups:
            groups.append([])
        groups[-1].append(frame)
        counts["frames"] += 1
        previous = frame
        # The sample clock runs on from the previous frame across jitter, so the segment's end
        # is the previous end plus n samples, not this frame's own (jittered) end.
        if len(groups[-1]) == 1:
            previous_end = start + int(round(n * ns_per_sample))
        else:
            previous_end += int(round(n * ns_per_sample))

    segments = []
    for group in groups:
        first = group[0]
        start_ns = first.centre_ns - int(round(first.flux.shape[1] / 2 * ns_per_sample))
        offsets = np.cumsum([0] + [f.flux.shape[1] for f in group[:-1]])
        triggers = [
            offset + _brightest_sample(f.flux)
            for offset, f in zip(offsets, group, strict=True)
            if f.trigger
        ]
        segments.append(
            Segment(
                observation_id=int(observation_id),
                start_ns=int(start_ns),
                flux=np.concatenate([f.flux for f in group], axis=1),
                frame_centre_ns=np.array([f.centre_ns for f in group], dtype=np.int64),
                frame_latitude=np.array([f.latitude for f in group]),
                frame_longitude=np.array([f.longitude for f in group]),
                trigger_samples=np.array(triggers, dtype=np.int64),
                sample_rate_hz=sample_rate_hz,
            )
        )
    return segments, counts, problems


# --------------------------------------------------------------------------------------------
# Windows


def window_starts(n_samples: int, length: int, stride: int) -> np.ndarray:
    """First samples of the windows ``[s, s + length)`` that fit in ``n_samples``, every ``stride``.

    Windows never run past the end (the tail shorter than a window is dropped). int64 ``(W,)``.
    """
    if length < 1 or stride < 1:
        raise ValueError(f"window length and stride must be >= 1, got {length}, {stride}")
    if n_samples < length:
        return np.empty(0, dtype=np.int64)
    return np.arange(0, n_samples - length + 1, stride, dtype=np.int64)


def trigger_window_starts(n_samples: int, length: int, trigger_samples) -> np.ndarray:
    """First samples of windows centred on each trigger sample, moved inside ``[0, n_samples)``.

    A trigger near an end gives a window flush with that end (shifted, never cut or reversed);
    identical windows are kept once. int64 ``(W,)``, ascending.
    """
    if n_samples < length:
        return np.empty(0, dtype=np.int64)
    starts = np.asarray(trigger_samples, dtype=np.int64) - length // 2
    return np.unique(np.clip(starts, 0, n_samples - length))


#: How windows may be placed (``WindowSettings.centre``).
CENTRES = ("none", "trigger", "pulse")


def cut_windows(
    segment: Segment,
    length: int,
    stride: int,
    centre: str = "none",
    pre: int | None = None,
    pulses=None,
) -> tuple[np.ndarray, np.ndarray]:
    """Where the windows of one segment lie: ``(starts, anchors)``, int64 ``(W,)`` each.

    ``centre="none"``: every ``stride`` samples. ``"trigger"``: centred on the triggers.
    ``"pulse"``: one window per detected light pulse (:func:`latentsky.analysis.pulses.find_pulses`,
    robust to photon noise), starting ``pre`` samples (default ``length // 8``) before it, so
    that every event sits at the same place in its window whatever the tiling; plus quiet
    windows, tiled every ``stride`` samples, wherever no pulse comes within ``pre`` samples.
    ``anchors`` is the sample of each window's pulse onset, -1 where the window has none (all
    windows but the pulse windows). Windows lie wholly inside the segment and come in time order.
    ``pulses``: the segment's pulses if already found (else found here).
    """
    n = segment.n_samples
    if centre == "none":
        starts = window_starts(n, length, stride)
    elif centre == "trigger":
        starts = trigger_window_starts(n, length, segment.trigger_samples)
    elif centre == "pulse":
        pre = length // 8 if pre is None else int(pre)
        if not 0 <= pre < length:
            raise ValueError(f"pre must lie in [0, length), got {pre} for length {length}")
        pulses = find_pulses(segment.flux) if pulses is None else pulses
        starts, anchors = event_windows(pulses, n, length, pre)
        quiet = quiet_windows(pulses, n, length, stride, margin=pre, taken=starts)
        starts = np.concatenate([starts, quiet])
        anchors = np.concatenate([anchors, np.full(len(quiet), -1, np.int64)])
        order = np.argsort(starts, kind="stable")
        return starts[order], anchors[order]
    else:
        raise ValueError(f"centre must be one of {CENTRES}, got {centre!r}")
    return starts, np.full(len(starts), -1, np.int64)


def stack_windows(flux: np.ndarray, starts: np.ndarray, length: int) -> np.ndarray:
    """Copies of ``flux[:, s:s+length]`` for each start: ``(band, n)`` -> ``(window, band, length)``.

    Samples keep their time order (index ``j`` of a window is the sample at ``s + j``).
    """
    index = np.asarray(starts, dtype=np.int64)[:, np.newaxis] + np.arange(length)
    if index.size and (index.min() < 0 or index.max() >= flux.shape[1]):
        raise ValueError("a window runs outside its segment")
    return np.ascontiguousarray(np.moveaxis(flux[:, index], 0, 1))


@dataclass(frozen=True)
class Scaling:
    """Map fluxes into [0, 1] for the Beta observation model.

    ``linear``: ``(clip(x, low, high) - low) / (high - low)``, the study's choice with
    ``low, high = 0, 210`` uW/m^2. ``log``: ``log1p((clip(x, low, high) - low) / log_scale) /
    log1p((high - low) / log_scale)``, which spreads faint signals (elves, corona discharges) over
    more of the range than bright lightning. ``baseline``: ``"none"`` (the study) or
    ``"window_median"``: each window's per-band median (the sky background under the event:
    moonlit or city-lit clouds) is subtracted first, so the model sees the signal above the
    background; ``low`` must then be negative enough for the noise (e.g. -10 uW/m^2). ``low``,
    ``high`` and ``log_scale`` are in the units of the data (uW/m^2 at level 1, counts at
    level 0). ``unit``: ``"flux"`` (the above) or ``"noise"``: after the baseline, each window's
    bands are divided by their own white-noise level (:func:`latentsky.analysis.pulses.noise_level`)
    so that ``low``, ``high`` and ``log_scale`` are in noise levels: a faint UV elve 20 noise levels
    above a dark sky then counts as much as a 777.4 nm stroke 20 noise levels above a bright one,
    whatever the band's brightness, background or gain. NaN stays NaN; the model clamps the result
    to ``[1e-6, 1 - 1e-5]``.
    """

    method: str = "linear"
    low: float = 0.0
    high: float = 210.0
    log_scale: float = 1.0
    baseline: str = "none"
    unit: str = "flux"

    def __post_init__(self):
        if self.unit not in ("flux", "noise"):
            raise ValueError(f"scaling unit must be 'flux' or 'noise', got {self.unit!r}")
        if self.method not in ("linear", "log"):
            raise ValueError(f"scaling method must be 'linear' or 'log', got {self.method!r}")
        if not self.high > self.low:
            raise ValueError(f"scaling needs high > low, got {self.low} .. {self.high}")
        if self.method == "log" and not self.log_scale > 0:
            raise ValueError(f"log scaling needs log_scale > 0, got {self.log_scale}")
        if self.baseline not in ("none", "window_median"):
            raise ValueError(
                f"scaling baseline must be 'none' or 'window_median', got {self.baseline!r}"
            )

    def baseline_of(self, flux) -> np.ndarray:
        """What :meth:`apply` subtracts from windows ``(..., sample)``: ``(..., 1)``."""
        x = np.asarray(flux, dtype=np.float64)
        if self.baseline == "none":
            return np.zeros((*x.shape[:-1], 1))
        return np.nanmedian(x, axis=-1, keepdims=True)

    def scale_of(self, flux) -> np.ndarray:
        """What :meth:`apply` divides windows ``(..., sample)`` by: ``(..., 1)``."""
        x = np.asarray(flux, dtype=np.float64)
        if self.unit == "flux":
            return np.ones((*x.shape[:-1], 1))
        return noise_level(x)[..., np.newaxis]

    def apply(self, flux) -> np.ndarray:
        """Windows ``(..., sample)`` of flux -> float32 in [0, 1], same shape."""
        x = (np.asarray(flux, dtype=np.float64) - self.baseline_of(flux)) / self.scale_of(flux)
        x = np.clip(x, self.low, self.high) - self.low
        if self.method == "linear":
            y = x / (self.high - self.low)
        else:
            y = np.log1p(x / self.log_scale) / np.log1p((self.high - self.low) / self.log_scale)
        return y.astype(np.float32)

    def invert(self, scaled, baseline=None, scale=None) -> np.ndarray:
        """Inverse of :meth:`apply` (values outside ``[low, high]`` come back clipped). float32.

        ``baseline``: what was subtracted, ``(..., 1)`` or broadcastable (the ``baseline_flux``
        of a windows store with a trailing axis); required for ``window_median``. ``scale``: what
        it was divided by (the store's ``noise_flux``, likewise); required for ``unit: noise``.
        """
        y = np.asarray(scaled, dtype=np.float64)
        if self.method == "linear":
            x = y * (self.high - self.low)
        else:
            x = self.log_scale * np.expm1(y * np.log1p((self.high - self.low) / self.log_scale))
        x = x + self.low
        if self.unit != "flux":
            if scale is None:
                raise ValueError("inverting a noise-unit scaling needs the noise levels")
            x = x * np.asarray(scale, dtype=np.float64)
        if self.baseline != "none":
            if baseline is None:
                raise ValueError("inverting a window_median scaling needs the baselines")
            x = x + np.asarray(baseline, dtype=np.float64)
        return x.astype(np.float32)

    def as_dict(self, units: str) -> dict:
        return {**asdict(self), "units": units}

    @classmethod
    def from_dict(cls, values: dict) -> Scaling:
        names = ("method", "low", "high", "log_scale", "baseline", "unit")
        return cls(**{k: values[k] for k in names if k in values})


@dataclass(frozen=True)
class WindowSettings:
    """How observations are cut: ``length`` and ``stride`` in samples, ``centre`` (one of
    :data:`CENTRES`, see :func:`cut_windows`), ``pre`` (samples before the pulse of a pulse
    window; None: ``length // 8``), the join tolerance in seconds and what ``frame_time_phot``
    stamps (``centre``, ``start`` or ``end`` of each frame)."""

    length: int = 5000
    stride: int = 5000
    centre: str = "none"
    join_tolerance_s: float = JOIN_TOLERANCE_S
    pre: int | None = None
    frame_time: str = "centre"


def windows_dataset(
    segment: Segment,
    starts: np.ndarray,
    length: int,
    scaling: Scaling,
    units: str,
    feature_fn=None,
    anchors: np.ndarray | None = None,
    colours: Colours | None = None,
) -> xr.Dataset:
    """The windows of one segment as an ``xarray.Dataset`` with dims ``(window, channel,
    sample)`` for the model's input and ``(window, band)`` for the features.

    Variables: ``waveform`` (float32 in [0, 1], the model's input: the bands scaled, then the
    ``colours`` channels of :class:`~latentsky.samples.colours.Colours`, if any) and, if
    ``feature_fn`` is given, the per-window features it returns (a mapping of name to ``(window,
    band)`` arrays, computed on the unscaled, unclipped flux). Coordinates along ``window``:
    ``observation`` (int64), ``start_time`` (first sample), ``time`` (the time that labels are
    matched to: the onset of the window's pulse for a pulse window, else the window centre),
    ``on_pulse`` (whether the window was cut around a pulse), ``latitude`` and ``longitude`` of
    the ISS at ``time`` (degrees), ``start_sample`` (in the segment); along ``band``:
    ``wavelength``; along ``channel``: the band or colour name and ``channel_label`` (the
    wavelengths, for figures). ``anchors``: pulse onset sample of each window, -1 for none (as from
    :func:`cut_windows`). ``window`` itself is numbered from 0 here; renumber when concatenating.
    """
    flux = stack_windows(segment.flux, starts, length)
    start_ns = segment.sample_times_ns(starts)
    anchors = np.full(len(starts), -1, np.int64) if anchors is None else np.asarray(anchors)
    on_pulse = anchors >= 0
    reference = np.where(on_pulse, anchors, np.asarray(starts) + length / 2)
    centre_ns = segment.sample_times_ns(reference)
    lat, lon = segment.position_at(centre_ns)
    n = len(starts)
    colours = colours or Colours()
    waveform = np.concatenate([scaling.apply(flux), colours.apply(flux, BANDS)], axis=1)
    data_vars = {"waveform": (("window", "channel", "sample"), waveform)}
    if feature_fn is not None:
        for name, values in feature_fn(flux, segment.sample_rate_hz).items():
            data_vars[name] = (("window", "band"), np.asarray(values, dtype=np.float32))
    ds = xr.Dataset(
        data_vars,
        coords={
            "window": np.arange(n, dtype=np.int64),
            "band": list(BANDS),
            "sample": np.arange(length, dtype=np.int64),
            "observation": ("window", np.full(n, segment.observation_id, dtype=np.int64)),
            "start_time": ("window", start_ns.astype("datetime64[ns]")),
            "time": ("window", centre_ns.astype("datetime64[ns]")),
            "on_pulse": ("window", on_pulse),
            "latitude": ("window", lat.astype(np.float64)),
            "longitude": ("window", lon.astype(np.float64)),
            "start_sample": ("window", np.asarray(starts, dtype=np.int64)),
            "wavelength": ("band", [BAND_WAVELENGTHS[b] for b in BANDS]),
            "channel": list(BANDS) + colours.names(),
            "channel_label": (
                "channel",
                [BAND_WAVELENGTHS[b] for b in BANDS] + colours.labels(BAND_WAVELENGTHS),
            ),
        },
    )
    return _describe_variables(ds, units)


def store_attrs(
    units: str,
    scaling: Scaling,
    settings: WindowSettings,
    bad_input: dict,
    colours: Colours | None = None,
) -> dict:
    """Global attributes of a windows store: bands, units, sample rate, scaling, colour
    channels, windowing and the bad-input counts (JSON strings where nested, as in the image
    stores)."""
    return {
        "colours": (colours or Colours()).as_json(),
        "title": "ASIM MMIA photometer windows, three bands stacked as channels",
        "sample_rate_hz": SAMPLE_RATE_HZ,
        "band_wavelengths": json.dumps(BAND_WAVELENGTHS),
        "units": units,
        "normalisation": json.dumps(scaling.as_dict(units)),
        "windowing": json.dumps(asdict(settings)),
        "bad_input": json.dumps(bad_input),
    }


def _describe_variables(ds: xr.Dataset, units: str) -> xr.Dataset:
    ds["waveform"].attrs = {
        "units": "1",
        "long_name": "scaled photometer signal and colour channels",
        "description": f"flux in {units} mapped into [0, 1] (see the normalisation attribute), "
        "then the band ratios of the colours attribute",
    }
    for name in ("baseline_flux", "noise_flux", "peak_flux"):
        if name in ds:
            ds[name].attrs = {"units": units, "description": "of the unscaled, unclipped flux"}
    for name in ("rise_time_us", "duration_us"):
        if name in ds:
            ds[name].attrs = {"units": "us"}
    if "has_pulse" in ds:
        ds["has_pulse"].attrs = {"description": "1 where the band has a pulse of 3 samples or more"}
    ds["sample"].attrs = {"description": f"sample number in the window, 1 / {SAMPLE_RATE_HZ:g} s"}
    ds["time"].attrs = {
        "description": "onset of the window's pulse, or the window centre where it has none "
        "(labels are matched to it)"
    }
    ds["on_pulse"].attrs = {"description": "the window was cut around a detected light pulse"}
    ds["start_time"].attrs = {"description": "time of the first sample of the window"}
    ds["latitude"].attrs = {"units": "degrees_north", "long_name": "ISS latitude"}
    ds["longitude"].attrs = {"units": "degrees_east", "long_name": "ISS longitude"}
    return ds


# --------------------------------------------------------------------------------------------
# Many files


def read_observations(
    paths: Sequence,
    counts: dict[str, int],
    *,
    level: int | str = "auto",
    skip_bad_input: bool = False,
    settings: WindowSettings = WindowSettings(),
    log=None,
    cache_bytes: float = 1e9,
    described: dict | None = None,
):
    """Yield ``(observation_id, segments)`` for every observation in ``paths``, one at a time.

    A first pass reads every file (checking it, and finding which observations it holds); files
    are kept in memory up to ``cache_bytes`` of samples, and those that did not fit are read again
    when their observations come. Each observation is then joined (:func:`join_observation`) and
    handed over before the next, so memory stays bounded whatever the number of files.
    Observations come in ascending id order.

    ``counts`` is updated in place: ``files_read``, ``files_unreadable``, ``frames_skipped``,
    ``duplicate_frames``, ``gaps``, ``overlapping_frames``, ``observations``. ``described``, if
    given, receives the ``level`` and ``units`` of the files (all files must share them: a file of
    another level is bad input).
    With ``skip_bad_input`` False, the first bad file or frame raises
    :class:`~latentsky.errors.BadInputError`; otherwise it is logged, counted and left out.
    """
    for key in (
        "files_read",
        "files_unreadable",
        "frames_skipped",
        "duplicate_frames",
        "gaps",
        "overlapping_frames",
        "observations",
    ):
        counts.setdefault(key, 0)
    first_file: dict[str, str] = {}
    described = {} if described is None else described

    def read(path: Path) -> MmiaFrames | None:
        try:
            frames = read_mmia_fits(
                path, level, skip_bad_frames=skip_bad_input, frame_time=settings.frame_time
            )
            for name, value in (("level", frames.level), ("units", frames.units)):
                if described.setdefault(name, value) != value:
                    raise BadInputError(
                        path,
                        f"{name} {value!r} differs from {described[name]!r} of {first_file[name]}",
                    )
                first_file.setdefault(name, str(path))
        except BadInputError as error:
            counts["files_unreadable"] += 1
            if not skip_bad_input:
                raise
            if log is not None:
                log.warning("skipped unreadable file: %s", error)
            return None
        return frames

    files_of: dict[int, list[Path]] = {}
    cache: dict[Path, MmiaFrames] = {}
    cached = 0
    for path in map(Path, paths):
        frames = read(path)
        if frames is None:
            continue
        counts["files_read"] += 1
        described.setdefault("frame_samples", int(np.median([f.shape[1] for f in frames.flux])))
        counts["frames_skipped"] += frames.n_skipped
        for problem in frames.problems:
            if log is not None:
                log.warning("skipped frame: %s", problem)
        for observation_id in np.unique(frames.observation_id):
            files_of.setdefault(int(observation_id), []).append(path)
        size = sum(f.nbytes for f in frames.flux)
        if cached + size <= cache_bytes:
            cache[path] = frames
            cached += size

    for observation_id in sorted(files_of):
        reads = []
        for path in files_of[observation_id]:
            # A file re-read here was good in the first pass; its problems are counted already.
            frames = (
                cache[path]
                if path in cache
                else read_mmia_fits(
                    path, level, skip_bad_frames=True, frame_time=settings.frame_time
                )
            )
            reads.append(frames)
        frames = frames_of_observation(reads, observation_id)
        segments, joined, problems = join_observation(
            frames,
            observation_id,
            tolerance_s=settings.join_tolerance_s,
            skip_bad_frames=skip_bad_input,
        )
        for key in ("duplicate_frames", "gaps", "overlapping_frames"):
            counts[key] += joined[key]
        for problem in problems:
            if log is not None:
                log.warning("skipped frame: %s", problem)
        counts["observations"] += 1
        yield observation_id, segments
        for path in files_of[observation_id]:
            # A file is done with once its last observation is; free its cache entry then.
            if path in cache and all(
                o <= observation_id for o in np.unique(cache[path].observation_id)
            ):
                del cache[path]


def window_pieces(
    paths: Sequence,
    settings: WindowSettings,
    scaling: Scaling,
    counts: dict[str, int],
    *,
    level: int | str = "auto",
    skip_bad_input: bool = False,
    log=None,
    block_windows: int = 2048,
    described: dict | None = None,
    pulse_times: list | None = None,
    colours: Colours | None = None,
):
    """Yield the windows of every observation in ``paths`` as datasets of about
    ``block_windows`` windows each (the unit of appending to a store).

    ``pulse_times``, if given, receives an int64 array of the onset times (ns) of the light
    pulses of every segment (:func:`latentsky.analysis.pulses.find_pulses`), for
    :func:`check_frame_time`.

    Windows are cut from each unbroken segment (:func:`cut_windows`), scaled (with the
    ``colours`` channels after the bands), and carry the
    features of :func:`latentsky.analysis.tle.window_features` (in the units of the files,
    unclipped); ``window`` numbers run on from block to block. ``counts`` is updated as by
    :func:`read_observations`, plus ``segments``, ``windows`` and ``samples_outside_windows``
    (samples of segments that no window covers); ``described`` as there.
    """
    for key in ("segments", "windows", "samples_outside_windows"):
        counts.setdefault(key, 0)
    described = {} if described is None else described
    observations = read_observations(
        paths,
        counts,
        level=level,
        skip_bad_input=skip_bad_input,
        settings=settings,
        log=log,
        described=described,
    )
    pending: list[xr.Dataset] = []
    n_pending = 0
    for _, segments in observations:
        for segment in segments:
            counts["segments"] += 1
            # One pulse search per segment, for the windows and the frame-time check alike.
            wanted = settings.centre == "pulse" or pulse_times is not None
            pulses = find_pulses(segment.flux) if wanted else None
            starts, anchors = cut_windows(
                segment, settings.length, settings.stride, settings.centre, settings.pre, pulses
            )
            counts.setdefault("pulse_windows", 0)
            counts["pulse_windows"] += int((anchors >= 0).sum())
            covered = np.zeros(segment.n_samples, dtype=bool)
            for s in starts:
                covered[s : s + settings.length] = True
            counts["samples_outside_windows"] += int((~covered).sum())
            if pulse_times is not None:
                pulse_times.append(segment.sample_times_ns(pulses.start))
            if not len(starts):
                continue
            piece = windows_dataset(
                segment,
                starts,
                settings.length,
                scaling,
                described["units"],
                window_features,
                anchors=anchors,
                colours=colours,
            )
            pending.append(piece.assign_coords(window=piece["window"] + counts["windows"]))
            counts["windows"] += len(starts)
            n_pending += len(starts)
            if n_pending >= block_windows:
                yield xr.concat(pending, dim="window")
                pending, n_pending = [], 0
    if pending:
        yield xr.concat(pending, dim="window")


def empty_windows(length: int, colours: Colours | None = None) -> xr.Dataset:
    """A windows dataset with no window (what a store holds when no file gave one)."""
    segment = Segment(
        observation_id=0,
        start_ns=0,
        flux=np.zeros((len(BANDS), length), np.float32),
        frame_centre_ns=np.zeros(1, np.int64),
        frame_latitude=np.zeros(1),
        frame_longitude=np.zeros(1),
        trigger_samples=np.zeros(0, np.int64),
    )
    return windows_dataset(
        segment, np.zeros(0, np.int64), length, Scaling(), "", window_features, colours=colours
    )


def check_frame_time(
    pulse_times_ns,
    labels,
    frame_samples: int,
    configured: str = "centre",
    tolerance_s: float = 0.005,
    quiet_labels=("background",),
    sample_rate_hz: float = SAMPLE_RATE_HZ,
) -> dict:
    """Is the frame-time convention plausible? Labelled events should sit on light pulses.

    Under each convention of :data:`~latentsky.instruments.mmia.FRAME_TIME_OFFSETS`, the
    samples would lie at other times (by half a frame, 41.6 ms for MMIA frames); this counts, for
    each, the share of labelled events (labels other than ``quiet_labels``) that have a detected
    pulse onset within ``tolerance_s``. Under the right convention nearly all do; under a wrong
    one only those that happen to fall near another pulse.

    Args:
        pulse_times_ns: onset times of the pulses found (int64 ns, any order), under the
            ``configured`` convention.
        labels: DataFrame with ``time`` (datetime64[ns]) and ``label``.
        frame_samples: samples per frame (8,320 for MMIA).

    Returns:
        ``{"configured", "n_event_labels", "share_on_pulse": {convention: share}, "best",
        "verdict"}``; ``verdict`` is ``"plausible"``, ``"implausible"`` (another convention puts
        at least 0.2 more of the labels on pulses, and at least half of them) or
        ``"unchecked"`` (no labelled event, or no pulse).
    """
    from latentsky.instruments.mmia import FRAME_TIME_OFFSETS

    pulses = np.sort(np.asarray(pulse_times_ns, dtype=np.int64))
    events = labels[~labels["label"].isin(list(quiet_labels))]
    times = events["time"].to_numpy(dtype="datetime64[ns]").astype(np.int64)
    out = {
        "configured": configured,
        "n_event_labels": len(events),
        "n_pulses": len(pulses),
        "tolerance_s": tolerance_s,
        "share_on_pulse": {},
    }
    if not len(times) or not len(pulses):
        return {**out, "best": configured, "verdict": "unchecked"}
    frame_ns = frame_samples / sample_rate_hz * 1e9
    tolerance = tolerance_s * 1e9
    for convention, offset in FRAME_TIME_OFFSETS.items():
        # Were the files stamped this way, a label at time T lies at T - shift in our timeline.
        shift = (offset - FRAME_TIME_OFFSETS[configured]) * frame_ns
        t = times - int(round(shift))
        at = np.clip(np.searchsorted(pulses, t), 1, len(pulses) - 1) if len(pulses) > 1 else None
        if at is None:
            gap = np.abs(pulses[0] - t)
        else:
            gap = np.minimum(np.abs(pulses[at] - t), np.abs(pulses[at - 1] - t))
        out["share_on_pulse"][convention] = float(np.mean(gap <= tolerance))
    shares = out["share_on_pulse"]
    best = max(shares, key=lambda c: (shares[c], c == configured))
    implausible = shares[best] >= 0.5 and shares[best] - shares[configured] >= 0.2
    return {**out, "best": best, "verdict": "implausible" if implausible else "plausible"}


def write_windows_store(
    folder,
    photometer: dict,
    out_path,
    skip_bad_input: bool = True,
    log=None,
    labels=None,
    label_tolerance_s: float = 0.005,
) -> dict:
    """Read every FITS file of ``folder``, cut the windows and write them to a store.

    Args:
        folder: the dataset's FITS folder.
        photometer: the dataset's ``photometer`` config (``pattern``, ``level``,
            ``join_tolerance_us``, ``frame_time``, ``window``, ``scaling``).
        out_path: the windows store (written atomically; nothing is left there on failure).
        skip_bad_input: count and leave out bad files and frames; False raises at the first.
        labels: the dataset's labels (DataFrame of ``time``, ``label``), for the frame-time
            check (:func:`check_frame_time`, recorded under ``frame_time`` in the ``input_checks`` attribute and
            logged as a warning when implausible); None skips it.
        label_tolerance_s: how far a label may lie from its window's time.

    Returns the counts (files, frames, observations, segments, windows, bad input).
    """
    from latentsky.instruments.mmia import find_fits_files
    from latentsky.stores import ChunkedStoreWriter

    window = photometer["window"]
    settings = WindowSettings(
        length=window["length"],
        stride=window["stride"],
        centre=window["centre"],
        pre=window.get("pre"),
        join_tolerance_s=photometer["join_tolerance_us"] * 1e-6,
        frame_time=photometer.get("frame_time", "centre"),
    )
    scaling = Scaling(**photometer["scaling"])
    colours = Colours.from_config(photometer.get("colours"))
    files = find_fits_files(folder, photometer["pattern"])
    if log is not None:
        log.info(
            "%d FITS files under %s; windows %s; scaling %s; %s",
            len(files),
            folder,
            settings,
            scaling,
            colours,
        )
    counts, described = Counts(), {}
    pulse_times: list | None = [] if labels is not None else None
    store = ChunkedStoreWriter(out_path, dim="window")
    try:
        for piece in window_pieces(
            files,
            settings,
            scaling,
            counts,
            level=photometer["level"],
            skip_bad_input=skip_bad_input,
            log=log,
            described=described,
            pulse_times=pulse_times,
            colours=colours,
        ):
            store.add(piece)
        attrs = store_attrs(described.get("units", ""), scaling, settings, counts, colours)
        attrs.update({"level": described.get("level", -1), "n_files": len(files)})
        if labels is not None:
            check = check_frame_time(
                np.concatenate(pulse_times) if pulse_times else np.empty(0, np.int64),
                labels,
                described.get("frame_samples", 8320),
                configured=settings.frame_time,
                tolerance_s=label_tolerance_s,
            )
            attrs["input_checks"] = json.dumps({"frame_time": check})
            if log is not None:
                report = log.warning if check["verdict"] == "implausible" else log.info
                report(
                    "frame_time_phot taken as the frame %s: labelled events on a pulse %s; %s",
                    settings.frame_time,
                    check["share_on_pulse"],
                    check["verdict"]
                    + (
                        f" (the files look like they stamp the frame {check['best']}: set "
                        f"photometer.frame_time: {check['best']})"
                        if check["verdict"] == "implausible"
                        else ""
                    ),
                )
        store.commit(attrs, empty=empty_windows(settings.length, colours))
    except BaseException:
        store.abort()
        raise
    return counts
