"""Hand labels (OATH style: a CSV of time, site, label) matched to image times."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from latentsky.labelcheck import OATH_CLASSES, check_labels_csv

#: The six OATH classes, in the order figures use.
CLASSES = OATH_CLASSES


def read_labels(path: str | Path, site: str | Iterable[str] | None = None) -> pd.DataFrame:
    """Read a labels CSV (columns time, site, label) -> DataFrame(time datetime64[ns], site, label)
    sorted by time, keeping the rows of ``site`` (one name or several; None: all).

    Every row is checked first (:func:`latentsky.labelcheck.check_labels_csv`): an empty or
    unparsable time, an empty site or label raises, naming the file and the line.
    """
    # The rows as the check read them (UTC times, sites and labels stripped and in lower case):
    # a second reader could disagree with the check and lose labels quietly.
    rows = check_labels_csv(Path(path))
    labels = pd.DataFrame(
        {
            "time": pd.to_datetime([when for when, _, _ in rows]).astype("datetime64[ns]"),
            "site": pd.Series([site for _, site, _ in rows], dtype=object),
            "label": pd.Series([label for _, _, label in rows], dtype=object),
        }
    )
    if site is not None:
        wanted = [site] if isinstance(site, str) else list(site)
        labels = labels[labels["site"].isin([name.lower() for name in wanted])]
    return labels.sort_values("time").reset_index(drop=True)


def labels_for_times(
    image_times, labels: pd.DataFrame, tolerance_s: float, image_sites=None
) -> np.ndarray:
    """Label of each image (object array, None where no label lies within ``tolerance_s``).

    With ``image_sites`` (``(N,)`` site of each image) a label applies only to images of its own
    site; without, ``labels`` are taken to be of the images' one site.
    """
    images = pd.DataFrame({"time": np.asarray(image_times, dtype="datetime64[ns]")})
    images["order"] = np.arange(len(images))
    by = None
    if image_sites is not None:
        images["site"] = np.asarray(image_sites).astype(str)
        by = "site"
    else:
        labels = labels.drop(columns="site", errors="ignore")
    matched = pd.merge_asof(
        images.sort_values("time"),
        labels.sort_values("time"),
        on="time",
        by=by,
        direction="nearest",
        tolerance=pd.Timedelta(seconds=tolerance_s),
    ).sort_values("order")
    out = matched["label"].to_numpy(dtype=object)
    out[pd.isna(out)] = None
    return out


def match_labels(
    sample_times, labels: pd.DataFrame, tolerance_s: float, sample_sites=None
) -> tuple[np.ndarray, dict[str, int]]:
    """Each label to the one sample nearest its time, and what could not be placed.

    A label goes to the sample (image, window) whose time is nearest to its own, within
    ``tolerance_s`` (and, with ``sample_sites``, of its own site). A sample chosen by several
    labels keeps the nearest one (the first in time on a tie); the others *share a sample* and are
    left out. Unlike :func:`labels_for_times`, no label is ever copied onto a second sample, and
    nothing is dropped unseen.

    Returns:
        ``(labels, counts)``: the label of each sample (object ``(N,)``, None where none) and
        ``{"labels", "matched", "unmatched", "shared_sample", "shared_sample_other_label"}``:
        labels read, placed, with no sample within the tolerance, left out because a nearer
        label took their sample, and how many of those carried a different label from it.
    """
    times = np.asarray(sample_times, dtype="datetime64[ns]").astype(np.int64)
    n = len(times)
    out = np.full(n, None, dtype=object)
    counts = {
        "labels": len(labels),
        "matched": 0,
        "unmatched": 0,
        "shared_sample": 0,
        "shared_sample_other_label": 0,
    }
    if not len(labels):
        return out, counts
    tolerance = int(round(tolerance_s * 1e9))
    label_times = labels["time"].to_numpy(dtype="datetime64[ns]").astype(np.int64)
    label_names = labels["label"].to_numpy(dtype=object)
    sites = np.zeros(n, dtype=object) if sample_sites is None else np.asarray(sample_sites)
    label_sites = (
        np.zeros(len(labels), dtype=object)
        if sample_sites is None
        else labels["site"].astype(str).to_numpy()
    )
    nearest = np.full(len(labels), -1, dtype=np.int64)
    distance = np.full(len(labels), np.iinfo(np.int64).max, dtype=np.int64)
    for site in pd.unique(label_sites):
        members = (
            np.flatnonzero(sites.astype(str) == str(site))
            if sample_sites is not None
            else (np.arange(n))
        )
        chosen = np.flatnonzero(label_sites == site)
        if not len(members):
            continue
        order = members[np.argsort(times[members], kind="stable")]
        sorted_times = times[order]
        at = np.searchsorted(sorted_times, label_times[chosen])
        for offset in (-1, 0):
            k = np.clip(at + offset, 0, len(order) - 1)
            gap = np.abs(sorted_times[k] - label_times[chosen])
            better = gap < distance[chosen]
            distance[chosen[better]] = gap[better]
            nearest[chosen[better]] = order[k[better]]
    placed = (nearest >= 0) & (distance <= tolerance)
    counts["unmatched"] = int((~placed).sum())
    # Nearest label first (ties: earlier label), so each sample keeps its nearest.
    for i in np.lexsort((label_times, distance)):
        if not placed[i]:
            continue
        j = nearest[i]
        if out[j] is None:
            out[j] = label_names[i]
            counts["matched"] += 1
        else:
            counts["shared_sample"] += 1
            counts["shared_sample_other_label"] += int(out[j] != label_names[i])
    return out, counts
