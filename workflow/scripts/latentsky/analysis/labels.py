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
