"""Finding light pulses in photometer records, robustly to photon noise and band cross-talk.

A photometer band at night counts a few photoelectrons per 10 us sample (the UV band often fewer
than one), so its noise is Poisson: grainy, skewed, with single-sample spikes of many standard
deviations; energetic particles add more single-sample spikes. A detector that assumes Gaussian
noise and takes one sample over a threshold as a pulse calls many quiet windows "lightning"
(8 % of them, on files generated independently of this repository). Here:

* the noise level (:func:`noise_level`) is a clipped root mean square of the first differences,
  started from the plain RMS and clipped from above, so it copes with discrete counts (where the
  median absolute difference is 0) as well as with pulses and slow drifts;
* the sky background (:func:`running_baseline`) is a lower envelope of block medians, following
  the slow changes of clouds and city lights under an event without rising into the event;
* a pulse (:func:`find_pulses`) is a run of at least ``min_samples`` consecutive samples (30 us at
  the default 3) more than ``min_snr`` noise levels above the background in some band: every
  planted or published TLE and stroke lasts that long (a blue jet's 10 us flash is followed by
  its pulses), single-sample spikes never do. Runs of different bands that overlap, or follow
  within ``merge_gap`` samples, are one pulse, so cross-talk (a band seeing a few percent of
  another's light, at the same moment) never makes a pulse of its own.

Shapes: flux ``(band, sample)`` of one record (or ``(..., sample)`` for :func:`noise_level`);
samples at 100 kHz for MMIA.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: A band's sample is "hot" when it lies this many noise levels above the background.
MIN_SNR = 5.0
#: A pulse needs at least this many consecutive hot samples in one band.
MIN_SAMPLES = 3
#: Runs (of any bands) closer than this many samples are one pulse.
MERGE_GAP = 5
#: Samples per block of the running background.
BASELINE_BLOCK = 200
#: Blocks of the opening (minimum, then maximum) that keeps the background under events.
BASELINE_SPAN = 5


def noise_level(flux, clip: float = 4.0, iterations: int = 12) -> np.ndarray:
    """White-noise level of ``(..., sample)`` data, ``(...)``, in the data's units.

    The root mean square of the first differences over sqrt 2, iteratively clipped at ``clip``
    times the current level: started from the plain RMS (too high where there are pulses or
    drifts), it only comes down, so discrete photon counts (differences mostly 0) keep their true
    level instead of the 0 a median would give. Floored at 1e-12; NaN samples are ignored.
    """
    x = np.asarray(flux, dtype=np.float64)
    d = np.diff(x, axis=-1) / np.sqrt(2.0)
    d = np.where(np.isfinite(d), d, np.nan)
    square = d**2
    level = np.sqrt(np.nanmean(square, axis=-1, keepdims=True))
    for _ in range(iterations):
        kept = np.where(np.abs(d) <= clip * level, square, np.nan)
        with np.errstate(invalid="ignore"):
            new = np.sqrt(np.nanmean(kept, axis=-1, keepdims=True))
        new = np.where(np.isfinite(new), new, level)
        if np.allclose(new, level, rtol=1e-4, atol=0.0):
            level = new
            break
        level = new
    # Clipping a Gaussian at 4 sigma loses 0.1 % of its variance: negligible, left uncorrected.
    return np.maximum(np.nan_to_num(level[..., 0], nan=0.0), 1e-12)


def running_baseline(flux, block: int = BASELINE_BLOCK, span: int = BASELINE_SPAN) -> np.ndarray:
    """Slowly varying sky background under a record ``(band, n)`` -> ``(band, n)``.

    Medians of blocks of ``block`` samples, then a grey opening over ``span`` blocks (the running
    minimum, then the running maximum of that): a block raised by an event (a few ms) is replaced
    by its quieter neighbours, while changes slower than ``span`` blocks (clouds, city lights) are
    followed. Linear between block centres. Records shorter than two blocks get their median.
    """
    x = np.asarray(flux, dtype=np.float64)
    bands, n = x.shape
    n_blocks = n // block
    if n_blocks < 2:
        return np.broadcast_to(np.nanmedian(x, axis=1, keepdims=True), x.shape).copy()
    edges = np.linspace(0, n, n_blocks + 1).astype(int)
    medians = np.stack(
        [np.nanmedian(x[:, a:b], axis=1) for a, b in zip(edges[:-1], edges[1:], strict=True)],
        axis=1,
    )
    half = span // 2
    padded = np.pad(medians, ((0, 0), (half, half)), mode="edge")
    lows = np.lib.stride_tricks.sliding_window_view(padded, span, axis=1).min(axis=-1)
    padded = np.pad(lows, ((0, 0), (half, half)), mode="edge")
    opened = np.lib.stride_tricks.sliding_window_view(padded, span, axis=1).max(axis=-1)
    centres = 0.5 * (edges[:-1] + edges[1:] - 1)
    samples = np.arange(n)
    return np.stack([np.interp(samples, centres, row) for row in opened])


@dataclass(frozen=True)
class Pulses:
    """Pulses found in one record, in time order.

    Attributes:
        start, end: first and one-past-last hot sample of each pulse (int64 ``(P,)``).
        peak: sample of each pulse's highest signal-to-noise ratio (any band).
        snr: that ratio (float ``(P,)``).
        bands: ``(P, band)`` bool, which bands have a run of their own in the pulse.
        noise: ``(band,)`` the noise levels used; baseline ``(band, n)`` the background.
    """

    start: np.ndarray
    end: np.ndarray
    peak: np.ndarray
    snr: np.ndarray
    bands: np.ndarray
    noise: np.ndarray
    baseline: np.ndarray

    def __len__(self) -> int:
        return len(self.start)

    def hot(self, n: int, margin: int = 0) -> np.ndarray:
        """``(n,)`` bool: samples within ``margin`` of a pulse."""
        out = np.zeros(n + 1, dtype=np.int64)
        np.add.at(out, np.clip(self.start - margin, 0, n), 1)
        np.add.at(out, np.clip(self.end + margin, 0, n), -1)
        return np.cumsum(out)[:n] > 0


def _runs(mask: np.ndarray, min_length: int) -> tuple[np.ndarray, np.ndarray]:
    """Starts and ends (exclusive) of the runs of True in a 1-D ``mask`` at least this long."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    keep = ends - starts >= min_length
    return starts[keep], ends[keep]


def find_pulses(
    flux,
    min_snr: float = MIN_SNR,
    min_samples: int = MIN_SAMPLES,
    merge_gap: int = MERGE_GAP,
    baseline: np.ndarray | None = None,
    noise: np.ndarray | None = None,
) -> Pulses:
    """The light pulses of one record ``(band, n)`` (see the module's description).

    Args:
        flux: ``(band, n)`` in physical units, unclipped; NaN samples are never hot.
        min_snr, min_samples, merge_gap: what counts as a pulse.
        baseline: ``(band, n)`` background (default :func:`running_baseline`).
        noise: ``(band,)`` noise levels (default :func:`noise_level` of the record).

    Returns:
        :class:`Pulses`.
    """
    x = np.asarray(flux, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"flux must be (band, sample), got shape {x.shape}")
    base = running_baseline(x) if baseline is None else np.asarray(baseline, dtype=np.float64)
    sigma = noise_level(x) if noise is None else np.asarray(noise, dtype=np.float64)
    snr = np.nan_to_num((x - base) / sigma[:, np.newaxis], nan=-np.inf)
    n = x.shape[1]
    runs = [_runs(band > min_snr, min_samples) for band in snr]
    owners = np.concatenate([np.full(len(s), b) for b, (s, _) in enumerate(runs)])
    starts = np.concatenate([s for s, _ in runs]).astype(np.int64)
    ends = np.concatenate([e for _, e in runs]).astype(np.int64)
    order = np.argsort(starts, kind="stable")
    starts, ends, owners = starts[order], ends[order], owners[order]
    merged_start, merged_end, members = [], [], []
    for s, e, b in zip(starts, ends, owners, strict=True):
        if merged_end and s <= merged_end[-1] + merge_gap:
            merged_end[-1] = max(merged_end[-1], int(e))
            members[-1].add(int(b))
        else:
            merged_start.append(int(s))
            merged_end.append(int(e))
            members.append({int(b)})
    start = np.array(merged_start, dtype=np.int64)
    end = np.array(merged_end, dtype=np.int64)
    combined = snr.max(axis=0) if n else np.zeros(0)
    peak = np.array(
        [a + int(np.argmax(combined[a:b])) for a, b in zip(start, end, strict=True)],
        dtype=np.int64,
    )
    bands = np.zeros((len(start), x.shape[0]), dtype=bool)
    for k, owned in enumerate(members):
        bands[k, sorted(owned)] = True
    return Pulses(
        start=start,
        end=end,
        peak=peak,
        snr=combined[peak] if len(peak) else np.zeros(0),
        bands=bands,
        noise=sigma,
        baseline=base,
    )


def event_windows(
    pulses: Pulses, n: int, length: int, pre: int, gap: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Windows of ``length`` samples around the pulses of a record of ``n`` samples.

    Pulses that follow one another within ``gap`` samples (end of one to start of the next;
    default ``length // 4``, 2.5 ms for 10 ms windows) are one *episode*: a sprite's stroke and
    its later glow, a jet's flash and its pulses. Each episode gets a window starting ``pre``
    samples before its first pulse (its *anchor*), so that every event sits at the same place in
    its window; a later episode gets its own window even where the two overlap (two strokes 5 ms
    apart are two windows, not one). A window that would run past an end of the record is moved
    inside it. Returns ``(starts, anchors)``, int64 ``(W,)`` each, in time order.
    """
    if n < length:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    gap = length // 4 if gap is None else int(gap)
    starts, anchors = [], []
    episode_end = None
    for onset, end in zip(pulses.start, pulses.end, strict=True):
        if episode_end is not None and onset <= episode_end + gap:
            episode_end = max(episode_end, int(end))
            continue
        starts.append(int(np.clip(onset - pre, 0, n - length)))
        anchors.append(int(onset))
        episode_end = int(end)
    return np.array(starts, dtype=np.int64), np.array(anchors, dtype=np.int64)


def quiet_windows(
    pulses: Pulses, n: int, length: int, stride: int, margin: int, taken=()
) -> np.ndarray:
    """Starts of windows in the quiet stretches of a record of ``n`` samples.

    A quiet stretch lies ``margin`` samples or more from every pulse and overlaps none of the
    windows in ``taken`` (starts of windows of the same ``length``). Each stretch of ``R >=
    length`` samples gets ``(R - length) // stride + 1`` windows, spread evenly and centred in it,
    so quiet sky next to an event gets windows too (a fixed tiling would miss most of it).
    int64 ``(W,)`` in time order.
    """
    if n < length:
        return np.empty(0, np.int64)
    busy = pulses.hot(n, margin)
    for first in taken:
        busy[first : first + length] = True
    edges = np.diff(np.concatenate([[0], (~busy).astype(np.int8), [0]]))
    run_starts, run_ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    starts = []
    for a, b in zip(run_starts, run_ends, strict=True):
        room = b - a - length
        if room < 0:
            continue
        k = room // stride + 1
        # Evenly spaced, the spare samples split between both ends of the stretch.
        offset = (room - (k - 1) * stride) // 2
        starts.append(a + offset + stride * np.arange(k))
    return np.concatenate(starts).astype(np.int64) if starts else np.empty(0, np.int64)
