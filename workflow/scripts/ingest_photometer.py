"""Read a folder of MMIA FITS files and cut their observations into (window, band, sample) windows."""

import json

from latentsky.instruments.mmia import find_fits_files
from latentsky.logs import log_to_file
from latentsky.samples.windows import (
    Scaling,
    WindowSettings,
    empty_windows,
    store_attrs,
    window_pieces,
)
from latentsky.stores import ChunkedStoreWriter

log = log_to_file(snakemake.log[0])
params = snakemake.params
photometer = params.photometer
window = photometer["window"]
settings = WindowSettings(
    length=window["length"],
    stride=window["stride"],
    centre=window["centre"],
    join_tolerance_s=photometer["join_tolerance_us"] * 1e-6,
)
scaling = Scaling(**photometer["scaling"])
skip = params.on_bad_input == "skip"
files = find_fits_files(snakemake.input.fits, photometer["pattern"])
log.info(
    "%d FITS files under %s; windows %s; scaling %s",
    len(files),
    snakemake.input.fits,
    settings,
    scaling,
)

counts: dict = {}
store = ChunkedStoreWriter(snakemake.output.windows, dim="window")
try:
    for piece in window_pieces(
        files, settings, scaling, counts, level=photometer["level"], skip_bad_input=skip, log=log
    ):
        store.add(piece)
    units = counts.pop("units", "")
    level = counts.pop("level", None)
    attrs = store_attrs(units, scaling, settings, counts)
    attrs.update({"level": -1 if level is None else level, "n_files": len(files)})
    store.commit(attrs, empty=empty_windows(settings.length))
except BaseException:
    store.abort()
    raise
log.info("%d windows; counts %s", counts["windows"], json.dumps(counts))
if not counts["windows"]:
    log.warning("no window: the store is empty (check the folder, the level and window length)")
