"""The real-data configs: valid against the schema, a dry run that needs no network and lists the
expected jobs, and URLs (and local paths) that match the archives' published layouts.

The published layouts (../shared/docs/brief.md, "Real data") are written out literally below, for
sample hours, so that a change in the code that builds URLs cannot pass unnoticed.
"""

from __future__ import annotations

import datetime as dt
import gzip
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from http_mirror import MirrorServer, idl_save, pgm_minute
from snakemake.utils import validate
from workflow_helpers import ROOT, copy_workflow, run_snakemake, scheduled_rules

from latentsky.acquisition import layouts
from latentsky.acquisition.http import DownloadSettings, Fetcher
from latentsky.acquisition.sources import SOURCES

REAL_BASE_URLS = {s.base_url_key: s.real_base_url for s in SOURCES.values()}
REAL_CONFIGS = [
    "fsim_2015_winter.yaml",
    "gill_2014_example.yaml",
    "four_sites_2015_winter.yaml",
]
SCHEMA = ROOT / "config" / "schema.yaml"


def load(name: str) -> dict:
    config = yaml.safe_load((ROOT / "config" / name).read_text())
    validate(config, str(SCHEMA), set_default=True)
    return config


@pytest.mark.parametrize("name", REAL_CONFIGS)
def test_real_config_is_valid_and_points_at_the_real_hosts(name):
    config = load(name)
    (dataset_name, dataset), *others = config["datasets"].items()
    assert others == [] and dataset_name == name.removesuffix(".yaml")
    assert "demo_mirror" not in dataset
    for key, url in dataset["base_urls"].items():
        assert url == REAL_BASE_URLS[key]
        assert url.startswith("https://")


def test_fsim_config_matches_the_study():
    dataset = load("fsim_2015_winter.yaml")["datasets"]["fsim_2015_winter"]
    assert (dataset["site"], dataset["gnss_station"]) == ("fsim", "fsi")
    assert (dataset["image_source"], dataset["skymap_source"]) == (
        "ucalgary_stream0",
        "ucalgary_sav",
    )
    start = dt.date.fromisoformat(dataset["dates"]["start"])
    end = dt.date.fromisoformat(dataset["dates"]["end"])
    assert {start.month, end.month} <= {11, 12, 1, 2} and 55 <= (end - start).days + 1 <= 62
    first, last = dataset["hours_ut"]
    minutes = ((end - start).days + 1) * (last - first + 1) * 60
    assert 30_000 < minutes < 40_000  # one image a minute: the study had 35,277 images


OFFLINE = {
    # Any HTTP(S) request made through a proxy-aware library would go nowhere and fail.
    "HTTP_PROXY": "http://127.0.0.1:9",
    "HTTPS_PROXY": "http://127.0.0.1:9",
    "ALL_PROXY": "http://127.0.0.1:9",
}


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    return copy_workflow(tmp_path_factory.mktemp("real"))


@pytest.mark.parametrize("name", REAL_CONFIGS)
def test_dry_run_needs_no_network_and_lists_the_jobs(scratch, name, monkeypatch):
    for key, value in OFFLINE.items():
        monkeypatch.setenv(key, value)
    config = load(name)
    (dataset_name, dataset), *_ = config["datasets"].items()
    sites = [s["site"] for s in dataset.get("sites", [{"site": dataset.get("site")}])]
    start = dt.date.fromisoformat(dataset["dates"]["start"])
    nights = (dt.date.fromisoformat(dataset["dates"]["end"]) - start).days + 1
    out = run_snakemake(scratch, "-n", "--cores", "8", "--configfile", f"config/{name}").stdout
    jobs = scheduled_rules(out)
    # Downloads and projection run per site and date, so their cost grows linearly with both.
    for rule in ("download_images", "download_scintillation", "project_images"):
        assert jobs[rule] == nights * len(sites), rule
    assert jobs["download_skymaps"] == len(sites)
    for rule in ("train_autoencoder", "embed_latents", "fit_sigma_phi", "summarise_results"):
        assert jobs[rule] == 1, rule
    for site in sites:
        for manifest in ("images", "ismr"):
            assert f"resources/{dataset_name}/manifests/{site}/{manifest}_{start}.tsv" in out
    assert not (scratch / "resources").exists()  # a dry run writes nothing

    out = run_snakemake(
        scratch, "download", "-n", "--cores", "4", "--configfile", f"config/{name}"
    ).stdout
    assert set(scheduled_rules(out)) == {
        "download",
        "download_images",
        "download_scintillation",
        "download_skymaps",
    }


def real(url: str, server: MirrorServer, host: str) -> str:
    return url.replace(server.url, host)


def test_fsim_urls_and_paths_match_the_published_layouts(tmp_path):
    """The URLs the download jobs of config/fsim_2015_winter.yaml build, for sample hours.

    The UCalgary listings come from a local mirror of data.phys.ucalgary.ca that holds the same
    paths; the hour files come from the job-building code, exactly as the rule scripts call it.
    """
    dataset = load("fsim_2015_winter.yaml")["datasets"]["fsim_2015_winter"]
    urls = dataset["base_urls"]
    raw = Path("resources/fsim_2015_winter/raw")
    samples = [dt.datetime(2015, 1, 1, 3), dt.datetime(2015, 2, 28, 12)]
    assert all(dataset["hours_ut"][0] <= s.hour <= dataset["hours_ut"][1] for s in samples)

    # CHAIN hourly ISMR: the URL is known without asking the server.
    jobs = SOURCES["chain_ismr"].jobs(urls["chain_ismr"], dataset["gnss_station"], samples, raw, 62)
    assert [(url, str(path)) for url, path, _ in jobs] == [
        (
            "https://www.chain-project.net/data/gps/ismr/2015/001/03/fsic15001d.ismr.gz",
            "resources/fsim_2015_winter/raw/chain_ismr/2015/001/03/fsic15001d.ismr.gz",
        ),
        (
            "https://www.chain-project.net/data/gps/ismr/2015/059/12/fsic15059m.ismr.gz",
            "resources/fsim_2015_winter/raw/chain_ismr/2015/059/12/fsic15059m.ismr.gz",
        ),
    ]

    # UCalgary stream0 and skymaps: a mirror with the host's paths, so that discovery runs.
    host = "https://data.phys.ucalgary.ca"
    stream0 = urlsplit(urls["ucalgary_stream0"]).path
    skymaps = urlsplit(urls["ucalgary_skymaps"]).path
    assert (stream0, skymaps) == (
        "/sort_by_project/THEMIS/asi/stream0",
        "/sort_by_project/THEMIS/asi/skymaps",
    )
    root = tmp_path / "mirror"
    for sample in samples:
        relative = layouts.ucalgary_stream0_minute("fsim", "themis08", sample)
        path = root / stream0.lstrip("/") / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(gzip.compress(pgm_minute(sample, imager="themis08")))
    for stamp in ("20140912", "20150215"):
        path = (
            root / skymaps.lstrip("/") / f"fsim/fsim_{stamp}/themis_skymap_fsim_{stamp}-+_v01.sav"
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(idl_save({"skymap": 1}))
    settings = DownloadSettings(retries=1, slot_dir=str(tmp_path / "slots"))
    with MirrorServer(root) as server:
        fetcher = Fetcher(settings)
        jobs, gaps = SOURCES["ucalgary_stream0"].jobs(
            fetcher, server.url + stream0, "fsim", samples, raw
        )
        sky, _ = SOURCES["ucalgary_sav"].jobs(
            fetcher,
            server.url + skymaps,
            "fsim",
            [dt.date(2015, 1, 1), dt.date(2015, 2, 28)],
            raw,
        )
    assert [(real(url, server, host), str(path)) for url, path, _ in jobs] == [
        (
            "https://data.phys.ucalgary.ca/sort_by_project/THEMIS/asi/stream0/"
            "2015/01/01/fsim_themis08/ut03/20150101_0300_fsim_themis08_full.pgm.gz",
            "resources/fsim_2015_winter/raw/ucalgary_stream0/"
            "2015/01/01/fsim_themis08/ut03/20150101_0300_fsim_themis08_full.pgm.gz",
        ),
        (
            "https://data.phys.ucalgary.ca/sort_by_project/THEMIS/asi/stream0/"
            "2015/02/28/fsim_themis08/ut12/20150228_1200_fsim_themis08_full.pgm.gz",
            "resources/fsim_2015_winter/raw/ucalgary_stream0/"
            "2015/02/28/fsim_themis08/ut12/20150228_1200_fsim_themis08_full.pgm.gz",
        ),
    ]
    assert real(gaps[0].url, server, host) == (
        "https://data.phys.ucalgary.ca/sort_by_project/THEMIS/asi/stream0/"
        "2015/01/01/fsim_themis08/ut03/20150101_0301_fsim_themis08_full.pgm.gz"
    )
    assert [real(url, server, host) for url, _, _ in sky] == [
        "https://data.phys.ucalgary.ca/sort_by_project/THEMIS/asi/skymaps/"
        "fsim/fsim_20140912/themis_skymap_fsim_20140912-+_v01.sav",
        "https://data.phys.ucalgary.ca/sort_by_project/THEMIS/asi/skymaps/"
        "fsim/fsim_20150215/themis_skymap_fsim_20150215-+_v01.sav",
    ]
    assert str(sky[0][1]) == (
        "resources/fsim_2015_winter/raw/ucalgary_sav/"
        "fsim/fsim_20140912/themis_skymap_fsim_20140912-+_v01.sav"
    )


def test_berkeley_urls_match_the_published_layouts():
    """Berkeley level-1 and calibration CDFs, from the schema's default base URLs (what a config
    with image_source berkeley_l1 / skymap_source berkeley_cal fetches when it names no URL)."""
    schema = yaml.safe_load(SCHEMA.read_text())
    defaults = {
        key: value["default"]
        for key, value in schema["$defs"]["asi_dataset"]["properties"]["base_urls"][
            "properties"
        ].items()
    }
    assert defaults == REAL_BASE_URLS
    raw = Path("resources/fsim_2015_winter/raw")
    hours = [dt.datetime(2015, 1, 1, 3), dt.datetime(2015, 2, 28, 12)]
    jobs, gaps = SOURCES["berkeley_l1"].jobs(None, defaults["berkeley_l1"], "fsim", hours, raw)
    assert gaps == []
    assert [url for url, _, _ in jobs] == [
        "https://themis.ssl.berkeley.edu/data/themis/thg/l1/asi/fsim/2015/01/"
        "thg_l1_asf_fsim_2015010103_v01.cdf",
        "https://themis.ssl.berkeley.edu/data/themis/thg/l1/asi/fsim/2015/02/"
        "thg_l1_asf_fsim_2015022812_v01.cdf",
    ]
    assert str(jobs[0][1]) == (
        "resources/fsim_2015_winter/raw/berkeley_l1/fsim/2015/01/thg_l1_asf_fsim_2015010103_v01.cdf"
    )
    cal, _ = SOURCES["berkeley_cal"].jobs(None, defaults["berkeley_cal"], "fsim", [], raw)
    assert [url for url, _, _ in cal] == [
        "https://themis.ssl.berkeley.edu/data/themis/thg/l2/asi/cal/thg_l2_asc_fsim_19700101_v01.cdf"
    ]
