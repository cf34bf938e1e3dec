"""Seeded demo data for the photometer track: MMIA FITS files with planted event types.

The real ASIM MMIA files are not public, so the demo writes files of the same layout (HDU 1 a
binary table, one row per frame of 8,320 samples at 100 kHz, the columns of
:mod:`latentsky.instruments.mmia`) with astropy, holding six planted kinds of *episodes*:

* ``lightning``: an ordinary stroke seen from above through cloud, bright at 777.4 nm and 337 nm
  (0.3-0.7 of 777.4), rising in 60-200 us and decaying over 250-800 us, with almost no UV (the
  cloud absorbs it); sometimes a second stroke 2-4 ms later;
* ``elve``: a UV-dominated flash under 1 ms long (rise ~10-25 us), 337 nm at 0.15-0.35 of the UV,
  and the parent stroke's 777.4 nm light starting 50-90 us *after* the UV;
* ``blue_corona``: a blue corona discharge (narrow bipolar event): 337 nm only, rising (10-90 %)
  in 10-30 us, a few tens of us long, with little or no 777.4 nm;
* ``sprite``: a positive cloud-to-ground stroke (777.4 and 337 nm) followed 0.5-2.5 ms later by
  about 1.3 ms (1.0-1.6 ms) of blue 337 nm emission with some UV;
* ``blue_jet``: a jet onset: a ~10 us blue flash, then blue pulses every 0.6-2 ms for 3-8 ms
  (real jets go on pulsing for hundreds of ms);
* ``background``: nothing but the sky.

What makes it look like real data rather than like the model's assumptions:

* **events anywhere in time**: each episode of ``episode_samples`` holds one planted event whose
  onset falls anywhere in it, and the event runs on past the episode's end when it is long, so
  events straddle the edges of any fixed windows (and now and then two events share a window);
* **photon (shot) noise**: each band counts photoelectrons (Poisson, :data:`PHOTON_FLUX`
  uW/m^2 each), few per sample in the UV, so faint bands are grainy with single-sample spikes;
  plus white read noise;
* **a sky background per observation** (moonlit or city-lit clouds) per band from
  :data:`BACKGROUND_RANGE`, with a slow drift and a slow wave over the observation;
* **band cross-talk**: every band sees a few percent (up to :data:`CROSSTALK_MAX`, drawn per
  observation) of the light of the other two;
* **saturation**: brighter light than :data:`SATURATION` clips flat (bright lightning does).

Also written: a labels CSV (``time,site,observation_id,label``) holding a random
``labelled_fraction`` of the episodes of each type, as a user's hand labels would be: the time of
the event's first peak, or for a background episode the middle of its longest quiet stretch (a
background episode with no quiet stretch of :data:`QUIET_LABEL_MS` gets no label); and, for the
tests only, a truth folder (the type, onset, end and planted peaks of every episode). No rule reads
the truth. Observations are partly split over two files, some with their rows in reverse time
order, as the reader must cope with both. ``frame_time`` says what the files' ``frame_time_phot``
stamps (the frame centre, the ASDC convention, or its start, to test the ingest's check). The
same parameters (seed included) give byte-identical files.
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from astropy.io import fits

from latentsky.instruments.mmia import LEVEL_COLUMNS, SAMPLE_RATE_HZ

#: Planted episode types, in the order used for indices and tables.
TYPES = ("lightning", "elve", "blue_corona", "sprite", "blue_jet", "background")
#: The transient luminous events among them, and the ordinary rest.
TLE_TYPES = ("elve", "blue_corona", "sprite", "blue_jet")
ORDINARY_TYPES = ("lightning", "background")

#: Samples per frame of the real level-1 files.
SAMPLES_PER_FRAME = 8320
#: Saturation of each band (337 nm, UV, 777.4 nm), uW/m^2: brighter signal clips flat.
SATURATION = np.array([170.0, 100.0, 200.0])
#: Flux of one photoelectron per sample in each band, uW/m^2: the photon (shot) noise. A sky of
#: 0.2 uW/m^2 in the UV is 5 photoelectrons a sample, grainy with single-sample spikes.
PHOTON_FLUX = np.array([0.02, 0.04, 0.03])
#: Sky background per band (337 nm, UV, 777.4 nm), drawn per observation from these ranges,
#: uW/m^2 (clouds lit by the moon or by cities), drifting by up to +-DRIFT over an observation and
#: waving by up to +-WAVE (periods of 20-80 ms).
BACKGROUND_RANGE = ((0.3, 4.0), (0.05, 0.5), (0.5, 8.0))
DRIFT = 0.15
WAVE = 0.15
#: Largest share of one band's light seen by another (cross-talk), drawn per observation and pair.
CROSSTALK_MAX = 0.05
#: White read noise per band, uW/m^2, times a factor drawn per observation from READ_NOISE_SPREAD.
READ_NOISE = np.array([0.2, 0.05, 0.3])
READ_NOISE_SPREAD = (0.8, 1.2)
#: Level-0 conversion: uW/m^2 per count and dark level (counts) per band.
LEVEL0_GAIN = np.array([0.02, 0.01, 0.03])
LEVEL0_DARK = 200.0
#: A band flags a trigger in a frame where its planted signal exceeds this, uW/m^2.
TRIGGER_LEVEL = np.array([15.0, 5.0, 20.0])
#: Seconds per sample.
DT_S = 1.0 / SAMPLE_RATE_HZ
#: Longest planted event, us (a jet's pulsing; a stroke's tail): the span rendered per event.
MAX_EVENT_US = 9000.0
#: A background episode is labelled only where it has a quiet stretch this long, ms.
QUIET_LABEL_MS = 6.0
#: Planted light below this (uW/m^2, summed over bands) counts as the event over.
EVENT_END_LEVEL = 0.3

_STREAM_PLAN, _STREAM_SIGNAL, _STREAM_NOISE, _STREAM_LABELS, _STREAM_FILES = range(5)


def _default_fractions() -> dict[str, float]:
    # Most 10-50 ms windows of a triggered record are quiet or hold ordinary lightning; TLEs are
    # rare (and an anomaly score can only call rare things unusual).
    return {
        "background": 0.60,
        "lightning": 0.30,
        "elve": 0.025,
        "blue_corona": 0.025,
        "sprite": 0.025,
        "blue_jet": 0.025,
    }


@dataclass
class TleDemoParams:
    """What the photometer demo holds.

    Attributes:
        seed: seed of everything random.
        n_observations: number of observations (triggered records).
        frames_per_observation: frames per observation (8,320 samples = 83.2 ms each).
        episode_samples: samples per episode (one planted event, or none, each).
        fractions: share of episodes of each type in :data:`TYPES` (normalised to sum to 1).
        labelled_fraction: share of each type's episodes that get a label in the labels CSV.
        level: 1 (photon flux, uW/m^2) or 0 (counts).
        split_fraction: share of observations written over two files.
        start: UTC time of the first observation (ISO); later ones follow at random intervals.
        frame_time: what ``frame_time_phot`` stamps: ``centre`` (the ASDC convention) or
            ``start`` of each frame.
        realistic: False plants the events without cross-talk, with Gaussian noise and with
            every event inside its episode (the old, flattering demo; for comparisons).
    """

    seed: int = 0
    n_observations: int = 80
    frames_per_observation: int = 3
    episode_samples: int = 1000
    fractions: dict[str, float] = field(default_factory=_default_fractions)
    labelled_fraction: float = 0.5
    level: int = 1
    split_fraction: float = 0.25
    start: str = "2019-01-05T00:00:00"
    frame_time: str = "centre"
    realistic: bool = True

    def validate(self) -> None:
        if self.n_observations < 1 or self.frames_per_observation < 1:
            raise ValueError("n_observations and frames_per_observation must be >= 1")
        if not 50 <= self.episode_samples <= SAMPLES_PER_FRAME * self.frames_per_observation:
            raise ValueError(
                f"episode_samples must lie in [50, {SAMPLES_PER_FRAME * self.frames_per_observation}]"
            )
        unknown = set(self.fractions) - set(TYPES)
        if unknown or not all(v >= 0 for v in self.fractions.values()):
            raise ValueError(
                f"fractions need types from {TYPES} and shares >= 0; got {self.fractions}"
            )
        if not sum(self.fractions.values()) > 0:
            raise ValueError("fractions must not all be zero")
        if not 0 <= self.labelled_fraction <= 1 or not 0 <= self.split_fraction <= 1:
            raise ValueError("labelled_fraction and split_fraction must lie in [0, 1]")
        if self.level not in (0, 1):
            raise ValueError(f"level must be 0 or 1, got {self.level}")
        if self.frame_time not in ("centre", "start"):
            raise ValueError(f"frame_time must be 'centre' or 'start', got {self.frame_time!r}")

    @property
    def samples_per_observation(self) -> int:
        return SAMPLES_PER_FRAME * self.frames_per_observation

    @property
    def episodes_per_observation(self) -> int:
        return self.samples_per_observation // self.episode_samples


# --------------------------------------------------------------------------------------------
# Signal shapes (time t and all durations in microseconds, amplitudes in uW/m^2)


def pulse(t: np.ndarray, onset: float, rise: float, decay: float) -> np.ndarray:
    """``(1 - exp(-tau/rise)) * exp(-tau/decay)`` for ``tau = t - onset >= 0``, 0 before, scaled
    to a peak of 1. The 10-90 % rise time is about ``2.2 * rise`` only when ``decay >> rise``;
    :func:`rise_time_10_90` gives it in general and :func:`rise_for` inverts it."""
    tau = np.maximum(np.asarray(t, dtype=np.float64) - onset, 0.0)
    a = rise / (rise + decay)
    peak = (1.0 - a) * a ** (rise / decay)
    return (1.0 - np.exp(-tau / rise)) * np.exp(-tau / decay) / peak


def rise_time_10_90(rise: float, decay: float) -> float:
    """10-90 % rise time (us) of :func:`pulse` with these parameters, from a fine time grid."""
    peak_at = rise * np.log1p(decay / rise)
    t = np.linspace(0.0, peak_at, 20_001)
    y = pulse(t, 0.0, rise, decay)
    return float(t[np.argmax(y >= 0.9)] - t[np.argmax(y >= 0.1)])


def rise_for(rise_time: float, decay: float) -> float:
    """The ``rise`` parameter of :func:`pulse` whose 10-90 % rise time is ``rise_time`` (us).

    The rise time grows with ``rise`` (for a fixed ``decay``); found by bisection.
    """
    low, high = 1e-3, 50.0 * rise_time
    if rise_time_10_90(high, decay) < rise_time:
        raise ValueError(f"no pulse with decay {decay} us rises as slowly as {rise_time} us")
    for _ in range(50):
        mid = 0.5 * (low + high)
        low, high = (mid, high) if rise_time_10_90(mid, decay) < rise_time else (low, mid)
    return 0.5 * (low + high)


def plateau(t: np.ndarray, onset: float, length: float, rise: float, fall: float) -> np.ndarray:
    """A smooth box of height ~1 from ``onset`` for ``length``, logistic edges of scale ``rise``
    and ``fall`` (the sprite's ~1.3 ms of blue emission)."""
    t = np.asarray(t, dtype=np.float64)
    # Logistic edges as tanh: no overflow far from the box.
    up = 0.5 * (1.0 + np.tanh((t - onset - 2 * rise) / (2 * rise)))
    down = 0.5 * (1.0 - np.tanh((t - onset - length) / (2 * fall)))
    return up * down


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def _stroke(rng, t, onset, a777, uv_share=(0.0, 0.015)) -> tuple[np.ndarray, float]:
    """Lightning stroke light through cloud: (3, n) signal and its 337 nm peak."""
    rise, decay = rng.uniform(60, 200), rng.uniform(250, 800)
    shape = pulse(t, onset, rise, decay)
    a337 = a777 * rng.uniform(0.3, 0.7)
    auv = a777 * rng.uniform(*uv_share)
    return np.stack([a337 * shape, auv * shape, a777 * shape]), a337


def episode_signal(
    kind: str, t: np.ndarray, rng: np.random.Generator, onset: float | None = None
) -> tuple[np.ndarray, dict]:
    """Planted signal of one event (no background, no noise) on times ``t`` (us).

    Args:
        kind: one of :data:`TYPES`.
        t: sample times, us, evenly spaced (e.g. from the episode's start).
        rng: the random generator of the event's parameters.
        onset: the event's onset, us on the same axis; ``None`` draws it at 10-45 % of the span of
            ``t`` (so that the event fits in it).

    Returns:
        ``(3, len(t))`` uW/m^2 in band order 337 nm, UV, 777.4 nm, and a dict of the event's
        parameters (``onset_us``, ...).
    """
    n = len(t)
    span = float(t[-1] + (t[1] - t[0]))
    signal = np.zeros((3, n))
    info: dict = {}
    if kind == "background":
        return signal, info
    if onset is None:
        onset = rng.uniform(0.1, 0.45) * span
    info["onset_us"] = onset
    if kind == "lightning":
        s, _ = _stroke(rng, t, onset, _log_uniform(rng, 15, 400))
        signal += s
        second = onset + rng.uniform(2000, 4000)
        if rng.random() < 0.3:
            s, _ = _stroke(rng, t, second, _log_uniform(rng, 15, 400) * rng.uniform(0.3, 0.8))
            signal += s
            info["second_stroke_us"] = second
    elif kind == "elve":
        auv = _log_uniform(rng, 4, 60)
        shape = pulse(t, onset, rng.uniform(10, 25), rng.uniform(80, 200))
        signal[1] += auv * shape
        signal[0] += auv * rng.uniform(0.15, 0.35) * shape
        lag = rng.uniform(50, 90)  # the parent stroke's 777.4 nm light arrives after the UV
        s, _ = _stroke(rng, t, onset + lag, auv * rng.uniform(0.2, 0.6))
        signal += s
        info["uv_lead_us"] = lag
    elif kind == "blue_corona":
        a337 = _log_uniform(rng, 5, 100)
        rise_time = rng.uniform(10, 30)
        decay = rise_time * rng.uniform(3.0, 8.0)  # tens to a few hundred us in all
        shape = pulse(t, onset, rise_for(rise_time, decay), decay)
        info["rise_time_us"] = rise_time
        signal[0] += a337 * shape
        signal[1] += a337 * rng.uniform(0.02, 0.1) * shape
        signal[2] += a337 * rng.uniform(0.0, 0.03) * shape
    elif kind == "sprite":
        s, _ = _stroke(rng, t, onset, _log_uniform(rng, 40, 300), uv_share=(0.0, 0.01))
        signal += s
        delay, length = rng.uniform(500, 2500), rng.uniform(1000, 1600)
        blue = _log_uniform(rng, 6, 60) * plateau(t, onset + delay, length, 15.0, 60.0)
        signal[0] += blue
        signal[1] += blue * rng.uniform(0.1, 0.3)
        signal[2] += blue * rng.uniform(0.05, 0.2)
        info.update(sprite_delay_us=delay, sprite_length_us=length)
    elif kind == "blue_jet":
        flash = _log_uniform(rng, 15, 120)
        signal[0] += flash * pulse(t, onset, 2.0, rng.uniform(5, 12))
        period = rng.uniform(600, 2000)
        end = min(span, onset + rng.uniform(3000, 8000))
        at = onset + period * rng.uniform(0.7, 1.3)
        n_pulses = 0
        while at < end:
            a = flash * rng.uniform(0.15, 0.5)
            shape = pulse(t, at, rng.uniform(20, 60), rng.uniform(100, 300))
            signal[0] += a * shape
            signal[1] += a * rng.uniform(0.05, 0.2) * shape
            signal[2] += a * rng.uniform(0.02, 0.08) * shape
            at += period * rng.uniform(0.7, 1.3)
            n_pulses += 1
        info.update(pulse_period_us=period, n_pulses=n_pulses)
    else:
        raise ValueError(f"unknown episode type {kind!r}")
    return signal, info


# --------------------------------------------------------------------------------------------
# Observations


@dataclass
class PlannedObservation:
    """One observation: its id, start (ns since 1970), ISS track and episode types."""

    observation_id: int
    start_ns: int
    latitude: tuple[float, float]  # at the start, and degrees per second
    longitude: tuple[float, float]
    types: list[str]


def plan_observations(params: TleDemoParams) -> list[PlannedObservation]:
    """The observations of the demo with the type of every episode (renders nothing)."""
    params.validate()
    rng = np.random.default_rng([params.seed, _STREAM_PLAN])
    names = list(TYPES)
    shares = np.array([params.fractions.get(name, 0.0) for name in names], dtype=np.float64)
    shares /= shares.sum()
    start_ns = int(np.datetime64(params.start, "ns").astype(np.int64))
    observations = []
    for k in range(params.n_observations):
        start_ns += int(rng.uniform(20, 600) * 1e9)  # the ISS flies from storm to storm
        # ISS ground speed ~7.66 km/s: about 0.069 degrees of great circle per second.
        heading = rng.uniform(0, 2 * np.pi)
        lat0 = rng.uniform(-45, 45)
        types = list(rng.choice(names, size=params.episodes_per_observation, p=shares))
        observations.append(
            PlannedObservation(
                observation_id=10_000 + 7 * k,
                start_ns=start_ns,
                latitude=(lat0, 0.069 * np.cos(heading)),
                longitude=(
                    rng.uniform(-180, 180),
                    0.069 * np.sin(heading) / np.cos(np.deg2rad(lat0)),
                ),
                types=[str(t) for t in types],
            )
        )
    return observations


def _sky(params: TleDemoParams, rng: np.random.Generator, n: int) -> np.ndarray:
    """Sky background ``(3, n)`` uW/m^2 of one observation: offsets, drift and a slow wave."""
    offsets = np.array([rng.uniform(low, high) for low, high in BACKGROUND_RANGE])
    x = np.linspace(-1, 1, n)
    drift = 1.0 + rng.uniform(-DRIFT, DRIFT, size=3)[:, np.newaxis] * x
    if params.realistic:
        period = rng.uniform(20e-3, 80e-3, size=3)[:, np.newaxis] / DT_S
        phase = rng.uniform(0, 2 * np.pi, size=3)[:, np.newaxis]
        amplitude = rng.uniform(0, WAVE, size=3)[:, np.newaxis]
        drift = drift + amplitude * np.sin(2 * np.pi * np.arange(n) / period + phase)
    return offsets[:, np.newaxis] * drift


def _crosstalk(params: TleDemoParams, rng: np.random.Generator) -> np.ndarray:
    """``(3, 3)`` mixing matrix: row ``i`` holds the shares of each band's light seen by band ``i``."""
    if not params.realistic:
        return np.eye(3)
    mixing = rng.uniform(0, CROSSTALK_MAX, size=(3, 3))
    np.fill_diagonal(mixing, 1.0)
    return mixing


def _event_times(signal: np.ndarray) -> tuple[int, int, int]:
    """Onset, first peak and end (samples into ``signal``, one event's planted ``(3, n)``): the
    first sample above 1 % of the event's peak, the brightest sample of its first millisecond
    (bands summed) and the last sample above :data:`EVENT_END_LEVEL` (or half the peak)."""
    total = signal.sum(axis=0)
    if not total.any():
        return 0, 0, 0
    onset = int(np.flatnonzero(total > 0.01 * total.max())[0])
    peak = onset + int(np.argmax(total[onset : onset + 100]))
    end = int(np.flatnonzero(total > min(EVENT_END_LEVEL, 0.5 * total.max()))[-1]) + 1
    return onset, peak, end


def render_observation(params: TleDemoParams, obs: PlannedObservation, index: int):
    """Flux ``(3, samples_per_observation)`` uW/m^2 (with background, cross-talk, noise,
    saturation), the noiseless planted signal of the same shape, and one truth row per episode."""
    signal_rng = np.random.default_rng([params.seed, _STREAM_SIGNAL, index])
    noise_rng = np.random.default_rng([params.seed, _STREAM_NOISE, index])
    n = params.samples_per_observation
    e = params.episode_samples
    dt_us = DT_S * 1e6
    planted = np.zeros((3, n))
    events = []
    for k, kind in enumerate(obs.types):
        if params.realistic:
            # Anywhere in the episode, running on past its end when long.
            onset_sample = k * e + signal_rng.uniform(0.0, 0.95) * e
            first = k * e
            last = min(n, int(onset_sample + MAX_EVENT_US / dt_us))
        else:
            onset_sample = k * e + signal_rng.uniform(0.1, 0.45) * e
            first, last = k * e, (k + 1) * e
        t = (np.arange(first, last) - first) * dt_us
        signal, info = episode_signal(kind, t, signal_rng, onset=(onset_sample - first) * dt_us)
        planted[:, first:last] += signal
        events.append((k, kind, first, signal, info))
    # The sky, the light each band sees of the others (cross-talk), photon and read noise.
    sky = _sky(params, noise_rng, n)
    mixing = _crosstalk(params, noise_rng)
    light = mixing @ (planted + sky)
    read_noise = READ_NOISE * noise_rng.uniform(*READ_NOISE_SPREAD, size=3)
    if params.realistic:
        photons = noise_rng.poisson(np.maximum(light, 0.0) / PHOTON_FLUX[:, np.newaxis])
        flux = photons * PHOTON_FLUX[:, np.newaxis]
    else:
        sigma = np.sqrt(PHOTON_FLUX[:, np.newaxis] * np.maximum(light, 0.0))
        flux = light + sigma * noise_rng.standard_normal(light.shape)
    flux = flux + read_noise[:, np.newaxis] * noise_rng.standard_normal(light.shape)
    flux = np.minimum(flux, SATURATION[:, np.newaxis])

    lit = planted.sum(axis=0) > EVENT_END_LEVEL  # where some event shines
    rows = []
    for k, kind, first, signal, info in events:
        start_ns = obs.start_ns + int(round(k * e * DT_S * 1e9))
        row = {
            "observation_id": obs.observation_id,
            "episode": k,
            "start_time": _iso(start_ns),
            "type": kind,
            "peak_337": float(signal[0].max()),
            "peak_uv": float(signal[1].max()),
            "peak_777": float(signal[2].max()),
            **{key: float(v) for key, v in info.items()},
        }
        if kind == "background":
            label_sample, labellable = _quiet_middle(lit, k * e, (k + 1) * e)
            row.update(onset_time="", end_time="")
        else:
            onset, peak, end = (first + i for i in _event_times(signal))
            label_sample, labellable = peak, True
            row.update(onset_time=_iso(_at(obs, onset)), end_time=_iso(_at(obs, end)))
        row.update(time=_iso(_at(obs, label_sample)), labellable=int(labellable))
        rows.append(row)
    return flux.astype(np.float32), planted, rows


def _at(obs: PlannedObservation, sample: float) -> int:
    """ns of a sample of an observation."""
    return obs.start_ns + int(round(sample * DT_S * 1e9))


def _quiet_middle(lit: np.ndarray, first: int, last: int) -> tuple[int, bool]:
    """A quiet moment for a background episode over samples ``[first, last)``: the middle of the
    longest unlit part of the episode, and whether it lies at least half :data:`QUIET_LABEL_MS`
    from any lit sample (the unlit stretch may reach beyond the episode)."""
    edges = np.diff(np.concatenate([[0], (~lit).astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    inner = np.minimum(ends, last) - np.maximum(starts, first)
    if not len(inner) or inner.max() <= 0:
        return (first + last) // 2, False
    j = int(np.argmax(inner))
    middle = int(max(starts[j], first) + min(ends[j], last)) // 2
    clearance = min(middle - starts[j], ends[j] - middle) * DT_S * 1e3
    return middle, bool(clearance >= QUIET_LABEL_MS / 2)


def _iso(ns: int) -> str:
    """ISO time with microseconds and an explicit UTC offset, as in the real frame_time_phot."""
    text = str(np.datetime64(int(ns), "ns").astype("datetime64[us]"))
    return f"{text}+00:00"


def _frame_table(
    params: TleDemoParams, obs: PlannedObservation, flux, planted, frames
) -> fits.BinTableHDU:
    """HDU 1 of one file: the given frames (indices) of an observation, in the given row order."""
    m = SAMPLES_PER_FRAME
    frame_ns = int(round(m * DT_S * 1e9))
    centres = [obs.start_ns + int(round((f + 0.5) * frame_ns)) for f in frames]
    starts = [obs.start_ns + f * frame_ns for f in frames]
    stamps = centres if params.frame_time == "centre" else starts
    seconds = np.array([(c - obs.start_ns) / 1e9 for c in centres])
    lat = obs.latitude[0] + obs.latitude[1] * seconds
    lon = (obs.longitude[0] + obs.longitude[1] * seconds + 180.0) % 360.0 - 180.0
    rows = len(frames)
    blocks = np.stack([flux[:, f * m : (f + 1) * m] for f in frames])  # (rows, band, m)
    trig = np.stack([planted[:, f * m : (f + 1) * m].max(axis=1) for f in frames]) > TRIGGER_LEVEL
    columns = [
        fits.Column("observation_id", format="K", array=np.full(rows, obs.observation_id)),
        fits.Column("frame_number", format="J", array=np.asarray(frames, dtype=np.int32)),
        fits.Column("raw_datetime", format="32A", array=np.array([_iso(s) for s in starts])),
        fits.Column("frame_time_phot", format="32A", array=np.array([_iso(c) for c in stamps])),
        fits.Column("latitude", format="D", unit="deg", array=lat),
        fits.Column("longitude", format="D", unit="deg", array=lon),
    ]
    for b in range(3):
        columns.append(
            fits.Column(f"PHOT{b + 1}Data_exists", format="L", array=np.ones(rows, bool))
        )
    for b in range(3):
        columns.append(fits.Column(f"PHOT{b + 1}DataTrigger", format="L", array=trig[:, b]))
    names = LEVEL_COLUMNS[params.level]
    for b, name in enumerate(names):
        if params.level == 1:
            columns.append(
                fits.Column(
                    name, format=f"{m}E", unit="uW/m^2", array=blocks[:, b].astype(np.float32)
                )
            )
        else:
            counts = np.clip(np.round(blocks[:, b] / LEVEL0_GAIN[b] + LEVEL0_DARK), 0, 65535)
            columns.append(
                fits.Column(name, format=f"{m}I", bzero=32768, array=counts.astype(np.uint16))
            )
    table = fits.BinTableHDU.from_columns(columns)
    table.header["EXTNAME"] = "MMIA_PHOT"
    return table


def _primary(params: TleDemoParams, obs: PlannedObservation) -> fits.PrimaryHDU:
    primary = fits.PrimaryHDU()
    primary.header["TELESCOP"] = "ISS"
    primary.header["INSTRUME"] = "ASIM-MMIA"
    primary.header["ORIGIN"] = "latentsky synthetic demo"
    primary.header["LEVEL"] = params.level
    primary.header["OBS_ID"] = obs.observation_id
    return primary


def file_name(params: TleDemoParams, obs: PlannedObservation, part: int | None = None) -> str:
    """``mmia_l1_observation_time_YYYY-MM-DD_HH-MM-SS_observation_id_N[_partK].fits``."""
    when = str(np.datetime64(obs.start_ns, "ns").astype("datetime64[s]"))
    stamp = when.replace("T", "_").replace(":", "-")
    suffix = "" if part is None else f"_part{part}"
    return f"mmia_l{params.level}_observation_time_{stamp}_observation_id_{obs.observation_id}{suffix}.fits"


def generate_tle_demo(
    fits_dir: Path, labels_path: Path, truth_dir: Path, params: TleDemoParams
) -> dict:
    """Write the demo FITS files, the labels CSV and the truth; return a summary.

    ``fits_dir`` gets one file per observation, or two (``_part1``, ``_part2``) for a
    ``split_fraction`` of them, the second sometimes with its rows in reverse time order.
    ``labels_path`` gets ``time,site,observation_id,label`` rows (``site`` is ``asim``; ``time``
    the event's first peak, or a quiet moment of a background episode). ``truth_dir`` gets
    ``truth.csv`` (one row per episode: observation, episode, its start, the label time, type,
    the event's onset and end (empty for background), whether it could be labelled, the planted
    noiseless peaks per band in uW/m^2, event parameters) and ``planted.json`` (types, shares,
    parameters, counts).
    """
    params.validate()
    fits_dir, labels_path, truth_dir = Path(fits_dir), Path(labels_path), Path(truth_dir)
    fits_dir.mkdir(parents=True, exist_ok=True)
    file_rng = np.random.default_rng([params.seed, _STREAM_FILES])
    observations = plan_observations(params)
    truth_rows, paths = [], []
    for index, obs in enumerate(observations):
        flux, planted, rows = render_observation(params, obs, index)
        truth_rows += rows
        frames = list(range(params.frames_per_observation))
        if params.frames_per_observation > 1 and file_rng.random() < params.split_fraction:
            cut = int(file_rng.integers(1, params.frames_per_observation))
            second = frames[cut:][:: -1 if file_rng.random() < 0.5 else 1]
            parts = [(1, frames[:cut]), (2, second)]
        else:
            parts = [(None, frames)]
        for part, chosen in parts:
            path = fits_dir / file_name(params, obs, part)
            hdul = fits.HDUList(
                [_primary(params, obs), _frame_table(params, obs, flux, planted, chosen)]
            )
            hdul.writeto(path, overwrite=True)
            paths.append(path)

    label_rng = np.random.default_rng([params.seed, _STREAM_LABELS])
    types = np.array([row["type"] for row in truth_rows])
    chosen = []
    labellable = np.array([bool(row["labellable"]) for row in truth_rows])
    for kind in TYPES:
        members = np.flatnonzero((types == kind) & labellable)
        k = int(round(params.labelled_fraction * members.size))
        if params.labelled_fraction > 0 and members.size:
            k = max(k, 1)
        chosen.extend(label_rng.choice(members, size=k, replace=False).tolist())
    labels_path.parent.mkdir(parents=True, exist_ok=True)
    with labels_path.open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["time", "site", "observation_id", "label"])
        for i in sorted(chosen):
            row = truth_rows[i]
            writer.writerow([row["time"], "asim", row["observation_id"], row["type"]])

    truth_dir.mkdir(parents=True, exist_ok=True)
    keys = sorted({key for row in truth_rows for key in row}, key=_truth_column_order)
    with (truth_dir / "truth.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=keys, lineterminator="\n")
        writer.writeheader()
        for row in truth_rows:
            writer.writerow(
                {k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()}
            )
    counts = {kind: int((types == kind).sum()) for kind in TYPES}
    planted_info = {
        "types": list(TYPES),
        "tle_types": list(TLE_TYPES),
        "ordinary_types": list(ORDINARY_TYPES),
        "episodes_per_type": counts,
        "params": asdict(params),
    }
    (truth_dir / "planted.json").write_text(json.dumps(planted_info, indent=2) + "\n")
    return {
        "fits_files": paths,
        "labels": labels_path,
        "truth_csv": truth_dir / "truth.csv",
        "n_observations": len(observations),
        "n_episodes": len(truth_rows),
        "n_labelled": len(chosen),
        "episodes_per_type": counts,
    }


_FIRST_TRUTH_COLUMNS = (
    "observation_id",
    "episode",
    "start_time",
    "time",
    "type",
    "onset_time",
    "end_time",
    "labellable",
)


def _truth_column_order(key: str) -> tuple[int, str]:
    return (_FIRST_TRUTH_COLUMNS.index(key), "") if key in _FIRST_TRUTH_COLUMNS else (99, key)
