"""Seeded demo data: a local mirror of the THEMIS and CHAIN archives with planted structure.

``make demo`` runs offline, so it needs data that look like the real archives to the code that
reads them. :func:`generate_demo_mirror` writes, in the real remote layouts (:mod:`.layouts`) and
formats:

* Berkeley level-1 all-sky-imager CDFs, one per site and UT hour (``thg_asf_<site>``, N x rows x columns
  uint16 counts, and ``thg_asf_<site>_epoch``, CDF_EPOCH), with the support variables and
  attributes of the real files;
* the Berkeley calibration CDF of the site (pixel elevation/azimuth, site position and pixel-corner
  latitude/longitude at 90, 110 and 150 km);
* gzipped CHAIN ISMR files (Septentrio layout, 62 columns, one row per minute and satellite);
* an OATH-style label CSV for a random subset of the frames;
* a truth folder (the planted class and sigma_phi of every frame), for tests only.

:func:`generate_multisite_mirror` writes the same for several sites into one mirror, one label CSV
and one truth folder. Each site has its own position, seed (independent scenes with the same class
statistics), planted sigma_phi relation and :class:`Imager`: the ways its camera differs from the
reference camera of the single-site demo (orientation, optical centre, vignetting, bias, gain,
noise, horizon obstructions, a town's light dome). The geometric differences are written into the
site's calibration CDF, as the real calibration files record them; the photometric ones are not.
:data:`DEFAULT_SITES` is a four-site set whose cameras differ enough that naive latents separate
by site.

The scenes: every night is a sequence of episodes (10-40 min) of six classes (arc, diffuse,
discrete, moon, clear, cloudy) chained by a Markov process, each minute has a phase scintillation
index sigma_phi drawn from a per-class log-normal distribution, and GNSS satellites that pass the
usual quality cuts carry that value while the ones that a cut must remove carry misleading ones.

Image geometry and orientation
------------------------------
Frames are rendered through an equidistant fisheye: the zenith angle grows linearly with the
distance from the image centre and reaches 90 degrees on the horizon circle of radius
``0.49 * image_size`` pixels; azimuth runs from north through east. The project's *canonical*
orientation is that of the UCalgary ``.sav`` skymaps: **north at the top (row 0) and east to the
LEFT**, as seen by someone lying on their back looking up at the sky. Berkeley arrays, the level-1
frames and the calibration arrays alike, are stored rotated by 180 degrees relative to canonical
(both axes reversed: north at the bottom row, east to the right), so this module renders in
canonical orientation and writes ``array[..., ::-1, ::-1]``.

Auroral scenes are drawn in geographic coordinates at 110 km (so arcs are east-west bands of
latitude that look curved in the fisheye), mapped to pixels by spherical geometry from the site,
then go through the instrument: vignetting, a soft field-of-view edge, an in-field pedestal of about
3300 counts over a detector dark level of about 2300 counts (the level the real sample files show
outside the field of view), photon and read noise, clipping to uint16.

An :class:`Imager` can turn the camera about the zenith and move its optical centre (the horizon
circle moves with it); the fisheye stays equidistant about the optical centre, and the scene,
stars and calibration are all computed through the same pixel directions.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import gzip
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from cdflib.cdfwrite import CDF

from latentsky.acquisition import layouts
from latentsky.analysis.labels import CLASSES
from latentsky.instruments.gpstime import utc_to_gps
from latentsky.instruments.themis import IMAGE_SHAPE

#: Planted log-normal distribution of sigma_phi per class: (mu, sigma) of ln(sigma_phi / rad).
SIGMA_PHI_LOGNORMAL = {
    "clear": (-3.0, 0.35),
    "cloudy": (-3.0, 0.35),
    "moon": (-2.9, 0.35),
    "diffuse": (-2.5, 0.40),
    "arc": (-1.9, 0.45),
    "discrete": (-1.5, 0.50),
}

#: Episode length range per class, minutes (inclusive).
DWELL_MINUTES = {
    "arc": (15, 40),
    "diffuse": (15, 40),
    "discrete": (10, 25),
    "moon": (15, 40),
    "clear": (15, 40),
    "cloudy": (20, 40),
}

#: Markov transition probabilities between episodes (row: from, column: to, order of CLASSES).
#: Arcs brighten into discrete aurora (substorm onset), which decays into diffuse aurora; weather
#: (cloud) and moon episodes come and go independently of the aurora.
TRANSITIONS = np.array(
    [
        # arc   diff  disc  moon  clear cloudy
        [0.00, 0.20, 0.35, 0.10, 0.25, 0.10],  # arc
        [0.30, 0.00, 0.10, 0.15, 0.30, 0.15],  # diffuse
        [0.30, 0.45, 0.00, 0.05, 0.10, 0.10],  # discrete
        [0.20, 0.15, 0.05, 0.00, 0.35, 0.25],  # moon
        [0.40, 0.15, 0.05, 0.20, 0.00, 0.20],  # clear
        [0.20, 0.15, 0.05, 0.20, 0.40, 0.00],  # cloudy
    ]
)

EARTH_RADIUS_KM = 6371.2
EMISSION_HEIGHT_KM = 110.0
AIRGLOW_HEIGHT_KM = 95.0
CALIBRATION_HEIGHTS_M = (90000.0, 110000.0, 150000.0)
HORIZON_RADIUS_FRACTION = 0.49
#: Level of a dark sky inside the field of view (bias plus the instrument's scattered light), counts.
PEDESTAL_COUNTS = 3300.0
#: Level outside the field of view, where no light reaches the detector, counts.
DARK_COUNTS = 2300.0
READ_NOISE_COUNTS = 10.0
#: Photon-noise variance per count of signal (counts per photo-electron).
GAIN_COUNTS_PER_PE = 2.0
#: The reference camera's town: a light dome on the horizon, present in every frame (helps check
#: orientation), at this azimuth (degrees) and with this peak (counts before vignetting).
LIGHT_DOME_AZIMUTH_DEG = 150.0
LIGHT_DOME_COUNTS = 900.0
#: Vignetting of the reference camera: throughput floor + (1 - floor) * cos(zenith angle)^power.
VIGNETTING_FLOOR = 0.45
VIGNETTING_POWER = 1.5
#: Delay of each exposure after its cadence step, seconds (the real files start ~0.05 s late).
FRAME_DELAY_S = 3.0

_MS_1970_IN_CDF_EPOCH = 62167219200000.0  # CDF_EPOCH (ms since 0000-01-01) of 1970-01-01
_STREAM_PLAN, _STREAM_FRAMES, _STREAM_NOISE, _STREAM_ISMR, _STREAM_STATIC, _STREAM_LABELS = range(6)


def _default_nights() -> list[dt.date]:
    return [dt.date(2019, 1, 5) + dt.timedelta(days=k) for k in range(5)]


@dataclass
class DemoParams:
    """What the demo mirror holds.

    ``site``/``station`` are the THEMIS site and CHAIN station codes; ``site_lat``/``site_lon``
    (degrees, east positive, -180..180) and ``site_alt_km`` place the imager. Each night covers the
    UT hours ``first_hour..last_hour`` (inclusive) of its UT date, one frame every ``cadence_s``
    seconds. ``labelled_fraction`` of the frames get a label; ``image_size`` is the side of the
    square frames in pixels. At least five nights are needed: with fewer, some class may get too
    few episodes (five 8-hour nights give every class about 400 one-minute frames).
    """

    site: str = "fsim"
    station: str = "fsi"
    site_lat: float = 61.76
    site_lon: float = -121.23
    site_alt_km: float = 0.27
    nights: list[dt.date] = field(default_factory=_default_nights)
    first_hour: int = 4
    last_hour: int = 11
    cadence_s: float = 60.0
    labelled_fraction: float = 0.5
    seed: int = 0
    image_size: int = IMAGE_SHAPE[0]

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first parameter that cannot work."""
        if len(self.nights) < 5:
            raise ValueError(f"nights: need at least 5 (all six classes), got {len(self.nights)}")
        if len(set(self.nights)) != len(self.nights):
            raise ValueError("nights: dates must be distinct")
        if not 0 <= self.first_hour <= self.last_hour <= 23:
            raise ValueError(
                f"need 0 <= first_hour <= last_hour <= 23, got {self.first_hour}, {self.last_hour}"
            )
        if not 0 < self.cadence_s <= 3600 - FRAME_DELAY_S - 1:
            raise ValueError(
                f"cadence_s must be in (0, {3600 - FRAME_DELAY_S - 1}], got {self.cadence_s}"
            )
        if round(self.cadence_s * 1000) != self.cadence_s * 1000:
            raise ValueError(
                f"cadence_s must be a whole number of milliseconds, got {self.cadence_s}"
            )
        if not 0.0 <= self.labelled_fraction <= 1.0:
            raise ValueError(f"labelled_fraction must be in [0, 1], got {self.labelled_fraction}")
        if not 32 <= self.image_size <= 1024:
            raise ValueError(f"image_size must be in 32..1024, got {self.image_size}")
        if not (-90 < self.site_lat < 90 and -180 <= self.site_lon <= 180):
            raise ValueError(f"site position out of range: {self.site_lat}, {self.site_lon}")


@dataclass(frozen=True)
class Imager:
    """How one site's camera differs from the reference camera; the defaults are that camera.

    Geometry, written into the site's calibration CDF (a projection with that file undoes it):

    * ``rotation_deg``: the camera turned about the zenith: the top of the canonical image looks
      toward this azimuth (degrees from north through east) instead of north.
    * ``centre_offset_px``: (rows, columns) from the image centre to the optical centre, pixels,
      canonical orientation (positive: down, right). The horizon circle moves with it.

    Photometry, not in the calibration (per-site normalisation has to deal with it):

    * ``vignetting_floor`` (0..1] and ``vignetting_power`` (>= 0): throughput
      ``floor + (1 - floor) * cos(zenith angle) ** power`` relative to the zenith;
    * ``bias_counts``: added to the dark level outside the field of view and to the pedestal;
    * ``gain``: counts per unit light relative to the reference camera (scales all light);
    * ``read_noise_counts``: standard deviation of the read noise, counts;
    * ``counts_per_pe``: photon-noise variance per count of signal (counts per photo-electron).

    The site's surroundings, fixed in the sky (azimuth from north through east, degrees):

    * ``obstructions``: ``(azimuth_from, azimuth_to, top_elevation)`` sectors, running east from
      ``azimuth_from`` to ``azimuth_to`` (through north when ``azimuth_from > azimuth_to``), where
      trees or buildings block the sky below ``top_elevation``: those pixels get no light, only
      the pedestal and noise;
    * ``light_dome_azimuth_deg``, ``light_dome_counts``: a town's glow on the horizon (peak counts
      before vignetting and gain, 0 for none); clouds brighten toward it in proportion (capped).

    Lists are accepted for the tuples (as from a YAML config) and stored as tuples.
    """

    rotation_deg: float = 0.0
    centre_offset_px: tuple[float, float] = (0.0, 0.0)
    vignetting_floor: float = VIGNETTING_FLOOR
    vignetting_power: float = VIGNETTING_POWER
    bias_counts: float = 0.0
    gain: float = 1.0
    read_noise_counts: float = READ_NOISE_COUNTS
    counts_per_pe: float = GAIN_COUNTS_PER_PE
    obstructions: tuple[tuple[float, float, float], ...] = ()
    light_dome_azimuth_deg: float = LIGHT_DOME_AZIMUTH_DEG
    light_dome_counts: float = LIGHT_DOME_COUNTS

    def __post_init__(self):
        object.__setattr__(self, "centre_offset_px", tuple(float(v) for v in self.centre_offset_px))
        object.__setattr__(
            self, "obstructions", tuple(tuple(float(v) for v in o) for o in self.obstructions)
        )

    def validate(self, image_size: int) -> None:
        """Raise ``ValueError`` naming the first parameter that cannot work at this image size."""
        if len(self.centre_offset_px) != 2:
            raise ValueError(f"centre_offset_px: need (rows, columns), got {self.centre_offset_px}")
        if max(abs(v) for v in self.centre_offset_px) > 0.1 * image_size:
            raise ValueError(
                f"centre_offset_px: at most {0.1 * image_size} pixels (a tenth of the image), "
                f"got {self.centre_offset_px}"
            )
        if not 0.0 < self.vignetting_floor <= 1.0 or self.vignetting_power < 0.0:
            raise ValueError(
                "vignetting: need 0 < vignetting_floor <= 1 and vignetting_power >= 0, got "
                f"{self.vignetting_floor}, {self.vignetting_power}"
            )
        if not (
            DARK_COUNTS + self.bias_counts >= 100.0 and PEDESTAL_COUNTS + self.bias_counts <= 2e4
        ):
            raise ValueError(
                f"bias_counts: levels leave the detector's range, got {self.bias_counts}"
            )
        if not 0.1 <= self.gain <= 10.0:
            raise ValueError(f"gain must be in [0.1, 10], got {self.gain}")
        if self.read_noise_counts < 0.0 or self.counts_per_pe < 0.0:
            raise ValueError(
                "read_noise_counts and counts_per_pe must be >= 0, got "
                f"{self.read_noise_counts}, {self.counts_per_pe}"
            )
        for o in self.obstructions:
            if len(o) != 3 or not (0 <= o[0] <= 360 and 0 <= o[1] <= 360 and 0 < o[2] < 90):
                raise ValueError(
                    f"obstructions: need (azimuth_from, azimuth_to, top_elevation) in degrees, "
                    f"azimuths in [0, 360] and 0 < top_elevation < 90, got {o}"
                )
        if self.light_dome_counts < 0.0:
            raise ValueError(f"light_dome_counts must be >= 0, got {self.light_dome_counts}")


# --------------------------------------------------------------------------------------------
# Geometry
# --------------------------------------------------------------------------------------------


def fisheye_directions(
    rows,
    cols,
    size: int,
    centre_offset_px: tuple[float, float] = (0.0, 0.0),
    rotation_deg: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Elevation and azimuth (degrees) of canonical-orientation pixel positions.

    ``rows``/``cols`` are (broadcastable) pixel coordinates, pixel centres at integers. Equidistant
    fisheye centred at ``(size - 1) / 2`` plus ``centre_offset_px`` (rows, columns) with the
    horizon at radius ``0.49 * size``; the top looks toward azimuth ``rotation_deg`` (north for 0),
    and east is 90 degrees counter-clockwise from it (left for 0). Elevation is negative beyond the
    horizon circle; azimuth is in [0, 360), from north through east.
    """
    centre = (size - 1) / 2.0
    dx = np.asarray(cols, dtype=np.float64) - (centre + centre_offset_px[1])
    dy = np.asarray(rows, dtype=np.float64) - (centre + centre_offset_px[0])
    radius = np.hypot(dx, dy)
    elevation = 90.0 - 90.0 * radius / (HORIZON_RADIUS_FRACTION * size)
    # East is to the left (-dx) and north to the top (-dy) before the camera is turned.
    azimuth = (np.degrees(np.arctan2(-dx, -dy)) + rotation_deg) % 360.0
    return elevation, azimuth


def ground_point(lat_deg, lon_deg, alt_km, elevation_deg, azimuth_deg, height_km):
    """Latitude and longitude (degrees, longitude in -180..180) where a line of sight meets a shell.

    Spherical Earth of radius :data:`EARTH_RADIUS_KM`; the observer at ``lat_deg``, ``lon_deg`` and
    ``alt_km`` looks at ``elevation_deg`` (>= 0) and ``azimuth_deg`` (from north through east); the
    shell is ``height_km`` above the surface. Arrays broadcast.
    """
    lat1 = np.radians(lat_deg)
    elev = np.radians(elevation_deg)
    az = np.radians(azimuth_deg)
    r_obs = EARTH_RADIUS_KM + alt_km
    r_shell = EARTH_RADIUS_KM + height_km
    # Earth-centred angle between observer and the intersection (law of sines in the triangle
    # Earth centre - observer - intersection).
    psi = np.arccos(np.clip(r_obs * np.cos(elev) / r_shell, -1.0, 1.0)) - elev
    sin_lat2 = np.sin(lat1) * np.cos(psi) + np.cos(lat1) * np.sin(psi) * np.cos(az)
    lat2 = np.arcsin(np.clip(sin_lat2, -1.0, 1.0))
    dlon = np.arctan2(
        np.sin(az) * np.sin(psi) * np.cos(lat1), np.cos(psi) - np.sin(lat1) * sin_lat2
    )
    lon2 = (lon_deg + np.degrees(dlon) + 180.0) % 360.0 - 180.0
    return np.degrees(lat2), lon2


def _van_rhijn(zenith_rad: np.ndarray, height_km: float, cap: float) -> np.ndarray:
    """Path-length enhancement of a thin emitting layer seen at zenith angle (1 at zenith)."""
    ratio = EARTH_RADIUS_KM / (EARTH_RADIUS_KM + height_km)
    return np.minimum(1.0 / np.sqrt(1.0 - (ratio * np.sin(zenith_rad)) ** 2), cap)


class SkyGeometry:
    """Per-pixel geometry and optics of one imager's canonical-orientation image, computed once.

    Full-image arrays are (size, size); the ``*_fov`` arrays are flat (n_fov,) over the pixels
    inside the horizon circle (indices ``fov_index`` into the flattened image), float32. The
    imager's rotation and optical centre shape the pixel directions; its vignetting, gain and
    obstructions make ``vignetting_fov`` (the throughput of sky light), its bias ``pedestal_fov``
    and ``dark_counts``, and its town ``light_dome_fov`` and the cloud-light ``town_*`` terms.
    """

    def __init__(self, params: DemoParams, imager: Imager = Imager()):
        imager.validate(params.image_size)
        size = params.image_size
        self.size = size
        self.imager = imager
        centre = (size - 1) / 2.0
        self.centre_row = centre + imager.centre_offset_px[0]
        self.centre_col = centre + imager.centre_offset_px[1]
        self.horizon_radius = HORIZON_RADIUS_FRACTION * size
        rows, cols = np.mgrid[0:size, 0:size]
        self.elevation, self.azimuth = self.directions(rows, cols)
        inside = self.elevation >= 0.0
        self.elevation[~inside] = np.nan
        self.azimuth[~inside] = np.nan
        self.fov_index = np.flatnonzero(inside)

        elev = self.elevation.ravel()[self.fov_index]
        az = self.azimuth.ravel()[self.fov_index]
        zen = np.radians(90.0 - elev)
        az_r = np.radians(az)
        f32 = np.float32
        self.zenith_fov = zen.astype(f32)
        self.elevation_fov = elev.astype(f32)
        # Line-of-sight unit vectors (east, north, up), for angular distances on the sky.
        self.los_fov = np.stack(
            [np.sin(zen) * np.sin(az_r), np.sin(zen) * np.cos(az_r), np.cos(zen)]
        ).astype(f32)

        lat, lon = ground_point(
            params.site_lat, params.site_lon, params.site_alt_km, elev, az, EMISSION_HEIGHT_KM
        )
        r_shell = EARTH_RADIUS_KM + EMISSION_HEIGHT_KM
        dlon = (lon - params.site_lon + 180.0) % 360.0 - 180.0
        # Local geographic coordinates at 110 km: bands of constant north_km are bands of latitude.
        self.north_km = (np.radians(lat - params.site_lat) * r_shell).astype(f32)
        self.east_km = (
            np.radians(dlon) * r_shell * math.cos(math.radians(params.site_lat))
        ).astype(f32)

        # Cloud-deck coordinates per km of cloud height (capped near the horizon).
        tan_z = np.tan(np.minimum(zen, np.radians(85.0)))
        self.cloud_east = (tan_z * np.sin(az_r)).astype(f32)
        self.cloud_north = (tan_z * np.cos(az_r)).astype(f32)

        radius = (90.0 - elev) / 90.0 * self.horizon_radius
        # Soft edge of the field of view (lens rim) over the last ~2 pixels.
        taper = np.clip((self.horizon_radius - radius) / 2.0, 0.0, 1.0)
        # Trees and buildings let no sky light through; what the detector adds stays.
        open_sky = np.ones_like(elev)
        for az_from, az_to, top in imager.obstructions:
            in_sector = (az - az_from) % 360.0 <= (az_to - az_from) % 360.0
            open_sky[in_sector & (elev < top)] = 0.0
        floor, power = imager.vignetting_floor, imager.vignetting_power
        self.vignetting_fov = (
            (floor + (1.0 - floor) * np.cos(zen) ** power) * taper * open_sky * imager.gain
        ).astype(f32)
        self.dark_counts = DARK_COUNTS + imager.bias_counts
        self.pedestal_fov = (self.dark_counts + (PEDESTAL_COUNTS - DARK_COUNTS) * taper).astype(f32)
        self.van_rhijn_airglow = _van_rhijn(zen, AIRGLOW_HEIGHT_KM, 6.0).astype(f32)
        self.van_rhijn_aurora = _van_rhijn(zen, EMISSION_HEIGHT_KM, 3.0).astype(f32)
        self.airmass_fov = np.minimum(1.0 / np.maximum(np.cos(zen), 0.1), 10.0).astype(f32)
        # Horizon direction components, for smooth sky gradients.
        self.grad_east = (np.sin(zen) * np.sin(az_r)).astype(f32)
        self.grad_north = (np.sin(zen) * np.cos(az_r)).astype(f32)
        dome_az = imager.light_dome_azimuth_deg
        dome_sep = np.radians(((az - dome_az + 180.0) % 360.0) - 180.0)
        self.light_dome_fov = (
            imager.light_dome_counts
            * np.exp(-elev / 7.0)
            * np.exp(-0.5 * (dome_sep / np.radians(18.0)) ** 2)
        ).astype(f32)
        # Cloud light brightens toward the town (-1..1 along the town's direction), by a fraction
        # of the reference camera's that grows with the dome's strength.
        self.town_direction = (
            math.sin(math.radians(dome_az)) * self.grad_east
            + math.cos(math.radians(dome_az)) * self.grad_north
        )
        self.town_scale = imager.light_dome_counts / LIGHT_DOME_COUNTS

    def directions(self, rows, cols) -> tuple[np.ndarray, np.ndarray]:
        """Elevation and azimuth (degrees) of canonical pixel positions through this imager."""
        return fisheye_directions(
            rows, cols, self.size, self.imager.centre_offset_px, self.imager.rotation_deg
        )

    def pixel_position(self, altitude, azimuth) -> tuple[np.ndarray, np.ndarray]:
        """Canonical (row, column) pixel positions of directions; the inverse of :meth:`directions`.

        ``altitude`` and ``azimuth`` (from north through east) in radians, arrays; returns float64
        positions (pixel centres at integers).
        """
        radius = (1.0 - altitude / (np.pi / 2)) * self.horizon_radius
        turned = azimuth - math.radians(self.imager.rotation_deg)
        row = self.centre_row - radius * np.cos(turned)
        col = self.centre_col - radius * np.sin(turned)  # east is to the left when not turned
        return row, col

    def corner_maps(self, params: DemoParams) -> tuple[np.ndarray, np.ndarray]:
        """Latitude and longitude (degrees, longitude 0..360) of pixel corners at 90/110/150 km.

        Shape (3, size + 1, size + 1), canonical orientation, NaN where a corner is below the
        horizon.
        """
        edges = np.arange(self.size + 1) - 0.5
        elev, az = self.directions(edges[:, None], edges[None, :])
        below = elev < 0.0
        elev = np.where(below, 0.0, elev)
        lats, lons = [], []
        for height_m in CALIBRATION_HEIGHTS_M:
            lat, lon = ground_point(
                params.site_lat, params.site_lon, params.site_alt_km, elev, az, height_m / 1000.0
            )
            lats.append(np.where(below, np.nan, lat))
            lons.append(np.where(below, np.nan, lon % 360.0))
        return np.stack(lats), np.stack(lons)


# --------------------------------------------------------------------------------------------
# Random fields and the star sky
# --------------------------------------------------------------------------------------------


def _fractal_texture(
    rng: np.random.Generator, n: int, beta: float, min_wavelength: float
) -> np.ndarray:
    """Periodic (n, n) random field with power spectrum ~ k^-beta, zero mean, unit std, float32.

    Wavelengths shorter than ``min_wavelength`` texels are suppressed.
    """
    k = np.hypot(np.fft.fftfreq(n)[:, None], np.fft.fftfreq(n)[None, :])
    k[0, 0] = 1.0
    amplitude = k ** (-beta / 2.0) * np.exp(-((k * min_wavelength) ** 2))
    amplitude[0, 0] = 0.0
    spectrum = amplitude * (rng.standard_normal((n, n)) + 1j * rng.standard_normal((n, n)))
    texture = np.fft.ifft2(spectrum).real
    texture -= texture.mean()
    texture /= texture.std()
    return texture.astype(np.float32)


def _sample_periodic(texture: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Bilinear sample of a periodic (n, n) texture (n a power of two) at texel coordinates.

    ``u`` runs along columns and ``v`` along rows; both (n_points,) float32; returns float32.
    """
    n = texture.shape[0]
    mask = n - 1  # periodic wrap by bit masking (n is a power of two)
    fu = np.floor(u)
    fv = np.floor(v)
    au = u - fu
    av = v - fv
    iu = fu.astype(np.int32) & mask
    iv = (fv.astype(np.int32) & mask) * n
    iu1 = (iu + 1) & mask
    iv1 = ((iv // n + 1) & mask) * n
    flat = texture.ravel()
    top = flat[iv + iu]
    top += au * (flat[iv + iu1] - top)
    bottom = flat[iv1 + iu]
    bottom += au * (flat[iv1 + iu1] - bottom)
    top += av * (bottom - top)
    return top


class StarSky:
    """A fixed random star catalogue, rendered at the right altitude/azimuth for each instant.

    Stars sit at fixed right ascension/declination and turn with sidereal time; brightness follows
    magnitude (more faint stars than bright ones); point-spread over 3 x 3 pixels.
    """

    def __init__(self, rng: np.random.Generator, n_stars: int = 450):
        self.ra = rng.uniform(0.0, 2 * np.pi, n_stars)
        self.dec = np.arcsin(rng.uniform(math.sin(math.radians(-25.0)), 1.0, n_stars))
        # Cumulative counts ~ 10^(0.45 m) between m = -0.5 and 5.5.
        lo, hi = 10 ** (0.45 * -0.5), 10 ** (0.45 * 5.5)
        magnitude = np.log10(lo + rng.uniform(0.0, 1.0, n_stars) * (hi - lo)) / 0.45
        self.flux = 14000.0 * 10 ** (-0.4 * magnitude)  # counts summed over the PSF at zenith

    def render(
        self, geom: SkyGeometry, when: np.datetime64, lat_deg: float, lon_deg: float
    ) -> np.ndarray:
        """Star light per field-of-view pixel, (n_fov,) float32 counts, before vignetting."""
        jd = (when - np.datetime64("2000-01-01T12:00:00", "ms")) / np.timedelta64(86400000, "ms")
        lst = np.radians((280.46061837 + 360.98564736629 * jd + lon_deg) % 360.0)
        lat = math.radians(lat_deg)
        hour_angle = lst - self.ra
        sin_alt = np.sin(lat) * np.sin(self.dec) + np.cos(lat) * np.cos(self.dec) * np.cos(
            hour_angle
        )
        alt = np.arcsin(sin_alt)
        az = np.arctan2(
            -np.cos(self.dec) * np.sin(hour_angle),
            np.sin(self.dec) * np.cos(lat) - np.cos(self.dec) * np.sin(lat) * np.cos(hour_angle),
        )
        up = alt > np.radians(1.0)
        alt, az, flux = alt[up], az[up], self.flux[up]
        row, col = geom.pixel_position(alt, az)
        airmass = np.minimum(1.0 / np.maximum(np.sin(alt), 0.1), 10.0)
        flux = flux * 10 ** (-0.4 * 0.25 * airmass)
        size = geom.size
        r0 = np.rint(row).astype(np.int64)
        c0 = np.rint(col).astype(np.int64)
        offsets = np.array([-1, 0, 1])
        rr = r0[:, None, None] + offsets[None, :, None]
        cc = c0[:, None, None] + offsets[None, None, :]
        weights = np.exp(
            -((rr - row[:, None, None]) ** 2 + (cc - col[:, None, None]) ** 2) / (2 * 0.6**2)
        )
        weights *= (flux / weights.sum(axis=(1, 2)))[:, None, None]
        ok = (rr >= 0) & (rr < size) & (cc >= 0) & (cc < size)
        image = np.bincount((rr * size + cc)[ok], weights=weights[ok], minlength=size * size)
        return image[geom.fov_index].astype(np.float32)


# --------------------------------------------------------------------------------------------
# Scenes: per-episode parameters and per-frame rendering
# --------------------------------------------------------------------------------------------


@dataclass
class Frame:
    """What a class renderer returns, all on field-of-view pixels (n_fov,) or scalars.

    ``aurora``: emission at 110 km (counts before vignetting and path-length enhancement);
    ``extra``: other light (moon glare, cloud light), counts before vignetting; ``sky_t``: the
    fraction of airglow and aurora that gets through; ``star_t``: the same for stars.
    """

    aurora: np.ndarray | float = 0.0
    extra: np.ndarray | float = 0.0
    sky_t: np.ndarray | float = 1.0
    star_t: np.ndarray | float = 1.0


# Each class has episode-level parameters (drawn once, drifting slowly) and large frame-to-frame
# variation around them, so that no class is a handful of templates: frames of one class from
# different episodes and nights resemble each other as much as frames of the same episode do.


def _draw_arc(rng: np.random.Generator, night: dict) -> dict:
    n = int(rng.choice([1, 2, 3], p=[0.45, 0.35, 0.20]))
    # Arc latitudes 60-160 km apart around a centre within the field of view.
    gaps = np.cumsum(np.r_[0.0, rng.uniform(60.0, 160.0, n - 1)])
    y_mid = rng.uniform(-150.0, 150.0)
    tilt = rng.uniform(-0.15, 0.15)
    arcs = []
    for y0 in y_mid + gaps - gaps.mean():
        end = None
        if rng.random() < 0.3:
            end = (rng.uniform(-300.0, 300.0), rng.choice([-1.0, 1.0]))
        arcs.append(
            {
                "y0": float(y0),
                "sigma": rng.uniform(10.0, 30.0) / 2.355,  # FWHM 10-30 km
                "asym": rng.uniform(1.0, 1.6),
                "peak": rng.uniform(2000.0, 6000.0),
                "tilt": tilt + rng.uniform(-0.02, 0.02),  # arcs of a system are near parallel
                "curv": rng.uniform(-2e-4, 2e-4),
                "mod_amp": rng.uniform(0.05, 0.3),
                "mod_k": 2 * np.pi / rng.uniform(200.0, 700.0),
                "end": end,
            }
        )
    return {"arcs": arcs, "vy": rng.uniform(-4.0, 4.0)}


def _render_arc(
    geom: SkyGeometry,
    p: dict,
    t_min: float,
    t_night_min: float,
    rng: np.random.Generator,
    night: dict,
) -> Frame:
    x, y = geom.east_km, geom.north_km
    total = np.zeros_like(x)
    # The arc system drifts slowly and oscillates north-south between frames.
    shift = p["vy"] * t_min + rng.normal(0.0, 30.0)
    for arc in p["arcs"]:
        yc = float(np.clip(arc["y0"] + shift + rng.normal(0.0, 8.0), -320.0, 320.0))
        tilt = arc["tilt"] + rng.normal(0.0, 0.04)
        d = y - (yc + tilt * x + arc["curv"] * x * x)
        sigma = np.where(d > 0, arc["sigma"] * arc["asym"], arc["sigma"]).astype(np.float32)
        profile = np.exp(-0.5 * (d / sigma) ** 2)
        profile *= 1.0 + arc["mod_amp"] * np.sin(arc["mod_k"] * x + rng.uniform(0.0, 2 * np.pi))
        if arc["end"] is not None:
            x_end, side = arc["end"]
            profile /= 1.0 + np.exp(np.clip(side * (x_end - x) / 50.0, -30, 30))
        total += (arc["peak"] * math.exp(rng.normal(0.0, 0.25))) * profile
    return Frame(aurora=total)


def _draw_discrete(rng: np.random.Generator, night: dict) -> dict:
    n = int(rng.choice([1, 2], p=[0.55, 0.45]))
    bands = []
    for _ in range(n):
        n_folds = int(rng.integers(1, 3))
        bands.append(
            {
                "y0": rng.uniform(-200.0, 200.0),
                "vy": rng.uniform(-6.0, 6.0),
                "wave_amp": rng.uniform(10.0, 50.0),
                "wave_k": 2 * np.pi / rng.uniform(400.0, 1000.0),
                # Folds/curls: local swirls of the band around points that travel along it.
                "fold_x": rng.uniform(-250.0, 250.0, n_folds),
                "fold_vx": rng.uniform(-10.0, 10.0, n_folds),
                "fold_angle": rng.choice([-1.0, 1.0], n_folds) * rng.uniform(1.5, 4.0, n_folds),
                "fold_width": rng.uniform(40.0, 120.0, n_folds),
                "sigma": rng.uniform(5.0, 12.0),
                "poleward": rng.uniform(2.0, 5.0),
                "peak": rng.uniform(9000.0, 24000.0),
                "ray_depth": rng.uniform(0.5, 0.9),
                "ray_k": 2 * np.pi / rng.uniform(8.0, 40.0, 3),
            }
        )
    return {"bands": bands}


def _render_discrete(
    geom: SkyGeometry,
    p: dict,
    t_min: float,
    t_night_min: float,
    rng: np.random.Generator,
    night: dict,
) -> Frame:
    x, y = geom.east_km, geom.north_km
    total = np.zeros_like(x)
    for band in p["bands"]:
        y0 = float(np.clip(band["y0"] + band["vy"] * t_min + rng.normal(0.0, 30.0), -300, 300))
        xw, yw = x, y
        for xf, vx, angle, width in zip(
            band["fold_x"], band["fold_vx"], band["fold_angle"], band["fold_width"], strict=True
        ):
            # Rotate the plane around the fold centre by an angle that fades with distance: a
            # straight band becomes an S-shaped fold or a curl, which travels and winds up.
            dx = xw - (xf + vx * t_min + rng.normal(0.0, 60.0))
            dy = yw - y0
            theta = (angle * rng.uniform(0.6, 1.4)) * np.exp(
                -(dx * dx + dy * dy) / (2.0 * width * width)
            )
            cos_t, sin_t = np.cos(theta), np.sin(theta)
            xw, yw = xw - dx + dx * cos_t - dy * sin_t, y0 + dx * sin_t + dy * cos_t
        wave = band["wave_amp"] * np.sin(band["wave_k"] * xw + rng.uniform(0.0, 2 * np.pi))
        d = yw - y0 - wave
        sigma = np.where(d > 0, band["sigma"] * band["poleward"], band["sigma"]).astype(np.float32)
        profile = np.exp(-0.5 * (d / sigma) ** 2)
        # Rays: strong modulation along the band that changes completely between frames.
        rays = np.zeros_like(x)
        for k in band["ray_k"]:
            rays += np.cos(k * xw + rng.uniform(0.0, 2 * np.pi))
        profile *= 1.0 + band["ray_depth"] * rays / 3.0
        glow = 0.06 * np.exp(-0.5 * ((y - y0) / 150.0) ** 2)
        total += (band["peak"] * math.exp(rng.normal(0.0, 0.25))) * (
            np.maximum(profile, 0.0) + glow
        )
    return Frame(aurora=total)


def _draw_diffuse(rng: np.random.Generator, night: dict) -> dict:
    return {
        "texture": _fractal_texture(rng, 128, 3.0, 6.0),
        "pulse_texture": _fractal_texture(rng, 128, 3.0, 3.0),
        "texel_km": 12.0,
        "yc": rng.uniform(-250.0, 100.0),
        "half_width": rng.uniform(200.0, 450.0),
        "edge": rng.uniform(60.0, 150.0),
        "level": rng.uniform(500.0, 1500.0),
        "contrast": rng.uniform(0.4, 0.8),
        "vy_band": rng.uniform(-2.0, 2.0),
        "pulse_amp": rng.uniform(0.2, 0.5),
    }


def _render_diffuse(
    geom: SkyGeometry,
    p: dict,
    t_min: float,
    t_night_min: float,
    rng: np.random.Generator,
    night: dict,
) -> Frame:
    x, y = geom.east_km, geom.north_km
    yc = p["yc"] + p["vy_band"] * t_min + rng.normal(0.0, 40.0)
    hw, edge = p["half_width"], p["edge"]
    envelope = 1.0 / (1.0 + np.exp(np.clip((yc - hw - y) / edge, -30, 30)))
    envelope *= 1.0 / (1.0 + np.exp(np.clip((y - yc - hw) / edge, -30, 30)))
    # Patches evolve within minutes: each frame sees a new part of the pattern.
    n = p["texture"].shape[0]
    u = x / p["texel_km"] + rng.uniform(0.0, n)
    v = y / p["texel_km"] + rng.uniform(0.0, n)
    patches = np.exp(p["contrast"] * _sample_periodic(p["texture"], u, v))
    # Pulsating patches switch on and off from frame to frame.
    pulse = np.maximum(_sample_periodic(p["pulse_texture"], u, v), 0.0)
    patches *= 1.0 + p["pulse_amp"] * rng.random() * pulse
    level = p["level"] * math.exp(rng.normal(0.0, 0.25))
    return Frame(aurora=level * envelope * patches)


def _moon_position(night: dict, t_night_min: float) -> tuple[float, float]:
    """Moon elevation and azimuth (degrees) along the night's track, from its rise time."""
    el0, az0, el_rate = night["moon_track"]
    hours_up = (t_night_min - night["moon_window"][0]) / 60.0
    elevation = float(np.clip(el0 + el_rate * hours_up, 10.0, 50.0))
    azimuth = (az0 + 14.5 * hours_up) % 360.0
    return elevation, azimuth


def _draw_moon(rng: np.random.Generator, night: dict) -> dict:
    return {
        "phase": rng.uniform(0.6, 1.0),
        "core_deg": rng.uniform(8.0, 14.0),
        "halo_deg": rng.uniform(25.0, 45.0),
        "halo": rng.uniform(3000.0, 6000.0),
        "sky": rng.uniform(500.0, 1000.0),
    }


def _render_moon(
    geom: SkyGeometry,
    p: dict,
    t_min: float,
    t_night_min: float,
    rng: np.random.Generator,
    night: dict,
) -> Frame:
    elevation, azimuth = _moon_position(night, t_night_min)
    el, az = math.radians(elevation), math.radians(azimuth)
    moon = np.array(
        [math.cos(el) * math.sin(az), math.cos(el) * math.cos(az), math.sin(el)], np.float32
    )
    cos_sep = np.clip(moon @ geom.los_fov, -1.0, 1.0)
    sep_deg = np.degrees(np.arccos(cos_sep))
    # Thin haze changes the glare from frame to frame.
    f = p["phase"] * math.exp(rng.normal(0.0, 0.25))
    halo_deg = p["halo_deg"] * math.exp(rng.normal(0.0, 0.1))
    glare = 15000.0 * f * np.exp(-sep_deg / p["core_deg"])
    glare += p["halo"] * f * np.exp(-sep_deg / halo_deg)
    glare += p["sky"] * f * (0.6 + 0.4 * cos_sep)
    # The disk itself saturates the detector.
    glare += np.where(sep_deg < 1.6, 80000.0, 0.0).astype(np.float32)
    return Frame(extra=glare, star_t=0.25)


def _draw_clear(rng: np.random.Generator, night: dict) -> dict:
    return {}


def _render_clear(
    geom: SkyGeometry,
    p: dict,
    t_min: float,
    t_night_min: float,
    rng: np.random.Generator,
    night: dict,
) -> Frame:
    # Large-scale airglow structure (gravity waves): a faint gradient that changes between frames.
    g = rng.uniform(-0.2, 0.2, 2)
    level = night["airglow"] * 0.3
    return Frame(
        extra=level * (g[0] * geom.grad_east + g[1] * geom.grad_north) * geom.van_rhijn_airglow
    )


def _draw_cloudy(rng: np.random.Generator, night: dict) -> dict:
    return {
        "texture": _fractal_texture(rng, IMAGE_SHAPE[0], 3.2, 2.0),
        "texel_km": 0.12,
        "cloud_km": rng.uniform(1.5, 4.0),
        "level": rng.uniform(700.0, 2000.0),
        "contrast": rng.uniform(0.15, 0.35),
        "town": rng.uniform(0.1, 0.4),
    }


def _render_cloudy(
    geom: SkyGeometry,
    p: dict,
    t_min: float,
    t_night_min: float,
    rng: np.random.Generator,
    night: dict,
) -> Frame:
    h = p["cloud_km"]
    # Low clouds cross the field of view within minutes: each frame sees new ones.
    n = p["texture"].shape[0]
    u = geom.cloud_east * (h / p["texel_km"]) + rng.uniform(0.0, n)
    v = geom.cloud_north * (h / p["texel_km"]) + rng.uniform(0.0, n)
    thickness = _sample_periodic(p["texture"], u, v)
    # Near the horizon many clouds overlap in a pixel, so the contrast averages out.
    contrast = (p["contrast"] * rng.uniform(0.7, 1.3)) * np.sqrt(np.cos(geom.zenith_fov))
    # Clouds scatter the town's light: brighter toward the light dome, more so for a bright town
    # (capped so that the far side of the sky stays lit).
    town = 1.0 + min(p["town"] * geom.town_scale, 0.8) * geom.town_direction
    level = p["level"] * math.exp(rng.normal(0.0, 0.2))
    light = level * np.maximum(1.0 + contrast * thickness, 0.2) * town
    sky_t = np.clip(0.25 - 0.1 * thickness, 0.02, 0.5)
    return Frame(extra=light, sky_t=sky_t, star_t=0.02 * sky_t)


_DRAW = {
    "arc": _draw_arc,
    "diffuse": _draw_diffuse,
    "discrete": _draw_discrete,
    "moon": _draw_moon,
    "clear": _draw_clear,
    "cloudy": _draw_cloudy,
}
_RENDER = {
    "arc": _render_arc,
    "diffuse": _render_diffuse,
    "discrete": _render_discrete,
    "moon": _render_moon,
    "clear": _render_clear,
    "cloudy": _render_cloudy,
}


@dataclass
class Episode:
    """One stretch of a night with one class: minutes [start, stop) from the night's first hour."""

    cls: str
    start: int
    stop: int
    params: dict


def plan_nights(
    params: DemoParams,
    lognormal: dict[str, tuple[float, float]] = SIGMA_PHI_LOGNORMAL,
    sky_seed: int | None = None,
) -> tuple[list[list[Episode]], list[dict], np.ndarray]:
    """Draw the class sequence, per-episode scene parameters and per-minute sigma_phi of all nights.

    ``lognormal``: the planted (mu, sigma) of ln(sigma_phi / rad) per class. Returns (episodes per
    night, night contexts, sigma_phi of shape (n_nights, n_minutes) in rad).
    Episodes follow :data:`TRANSITIONS`, reweighted toward classes that are behind their share of
    the total time so that every class gets about a sixth of the minutes. Moon episodes happen only
    while the moon is up: a window of the night that starts ~50 minutes later each night (the moon
    rises later every day), along much the same track across the sky.
    """
    n_minutes = (params.last_hour - params.first_hour + 1) * 60
    n_classes = len(CLASSES)
    moon_index = CLASSES.index("moon")
    target = len(params.nights) * n_minutes / n_classes
    used = np.zeros(n_classes)
    nights_episodes, contexts = [], []
    sigma = np.zeros((len(params.nights), n_minutes))
    # One moon over every site of a multi-site demo (the sites' own draws are still made, so that
    # the rest of each site's plan stays as it was).
    moon_seed = params.seed if sky_seed is None else sky_seed
    for k in range(len(params.nights)):
        rng = np.random.default_rng([params.seed, _STREAM_PLAN, k])
        night = _night_sky(rng, params.seed, k, n_minutes)
        if moon_seed != params.seed:
            shared = _night_sky(
                np.random.default_rng([moon_seed, _STREAM_PLAN, k]), moon_seed, k, n_minutes
            )
            night.update(moon_window=shared["moon_window"], moon_track=shared["moon_track"])
        rise, set_ = night["moon_window"]
        episodes: list[Episode] = []
        minute, previous = 0, None
        while minute < n_minutes:
            deficit = (np.maximum(target - used, 1.0) / target) ** 2
            base = np.full(n_classes, 1.0) if previous is None else TRANSITIONS[previous]
            weights = base * deficit
            if rise <= minute <= set_ - DWELL_MINUTES["moon"][0]:
                weights[moon_index] *= 3.0  # a bright moon, when up, dominates many images
            else:
                weights[moon_index] = 0.0
            cls_index = int(rng.choice(n_classes, p=weights / weights.sum()))
            cls = CLASSES[cls_index]
            low, high = DWELL_MINUTES[cls]
            stop = min(minute + int(rng.integers(low, high + 1)), n_minutes)
            if cls_index == moon_index:
                stop = min(stop, set_)
            if n_minutes - stop < 10:  # no stub episodes at the end of the night
                stop = n_minutes
            episodes.append(Episode(cls, minute, stop, _DRAW[cls](rng, night)))
            mu, sd = lognormal[cls]
            sigma[k, minute:stop] = np.exp(mu + sd * rng.standard_normal(stop - minute))
            used[cls_index] += stop - minute
            minute, previous = stop, cls_index
        nights_episodes.append(episodes)
        contexts.append(night)
    return nights_episodes, contexts, sigma


def _night_sky(rng: np.random.Generator, seed: int, k: int, n_minutes: int) -> dict:
    """Night ``k``'s airglow and moon, drawn from ``rng`` (the night's plan stream) and the
    moon's schedule for the whole run (the plan stream of ``seed``)."""
    run = np.random.default_rng([seed, _STREAM_PLAN])
    window = min(int(run.integers(200, 241)), n_minutes)
    first_rise = int(run.integers(0, n_minutes - window + 1))
    moon_el, moon_az, moon_rate = (
        run.uniform(25.0, 40.0),
        run.uniform(90.0, 200.0),
        run.uniform(-4, 4),
    )
    rise = (first_rise + 50 * k) % (n_minutes - window + 1)
    return {
        "airglow": rng.uniform(200.0, 300.0),
        "airglow_gradient": rng.uniform(-0.1, 0.1, 2),
        "moon_window": (rise, rise + window),
        "moon_track": (
            moon_el + rng.normal(0.0, 2.0),
            moon_az + rng.normal(0.0, 2.0),
            moon_rate,
        ),
    }


class Renderer:
    """Turns scenes into uint16 frames through one imager; holds the geometry, stars and buffers."""

    def __init__(self, params: DemoParams, imager: Imager = Imager(), sky_seed: int | None = None):
        self.params = params
        self.geom = SkyGeometry(params, imager)
        static = np.random.default_rng([params.seed, _STREAM_STATIC])
        self.stars = StarSky(static)
        if sky_seed is not None and sky_seed != params.seed:
            # The same star catalogue at every site of a multi-site demo: one sky, seen from
            # several places (the stars' positions still follow each site's place and time).
            self.stars = StarSky(np.random.default_rng([sky_seed, _STREAM_STATIC]))
        n_fov = self.geom.fov_index.size
        size = params.image_size
        # Fixed pattern: pixel-to-pixel gain differences and a few hot pixels.
        self.flat_fov = (1.0 + 0.01 * static.standard_normal(n_fov)).astype(np.float32)
        self.hot = static.choice(size * size, size=max(4, size * size // 3000), replace=False)
        self.hot_counts = static.uniform(500.0, 4000.0, self.hot.size).astype(np.float32)
        self.dome = self.geom.vignetting_fov * self.geom.light_dome_fov
        self._image = np.empty(size * size, np.float32)

    def render(
        self,
        episode: Episode,
        night: dict,
        when: np.datetime64,
        t_night_min: float,
        frame_rng: np.random.Generator,
        noise_rng: np.random.Generator,
    ) -> np.ndarray:
        """One frame, (size, size) uint16 counts in canonical orientation.

        ``t_night_min``: minutes since the night's first hour (the episode clock is derived from it).
        """
        g = self.geom
        t_episode = t_night_min - episode.start
        scene = _RENDER[episode.cls](g, episode.params, t_episode, t_night_min, frame_rng, night)
        ge, gn = night["airglow_gradient"]
        airglow = (night["airglow"] * math.exp(frame_rng.normal(0.0, 0.12))) * g.van_rhijn_airglow
        airglow *= 1.0 + ge * g.grad_east + gn * g.grad_north
        sky = airglow + scene.aurora * g.van_rhijn_aurora
        stars = self.stars.render(g, when, self.params.site_lat, self.params.site_lon)
        light = (
            g.vignetting_fov * (scene.sky_t * sky + scene.extra + scene.star_t * stars) + self.dome
        )
        np.maximum(light, 0.0, out=light)
        noise = noise_rng.standard_normal(self._image.size, dtype=np.float32)
        image = self._image
        read_noise = g.imager.read_noise_counts
        np.multiply(noise, read_noise, out=image)
        image += g.dark_counts
        sd = np.sqrt(g.imager.counts_per_pe * light + read_noise**2)
        image[g.fov_index] = g.pedestal_fov + light * self.flat_fov + sd * noise[g.fov_index]
        image[self.hot] += self.hot_counts
        np.clip(image, 0.0, 65535.0, out=image)
        image += 0.5
        return image.astype(np.uint16).reshape(g.size, g.size)


# --------------------------------------------------------------------------------------------
# Writers: Berkeley CDFs, CHAIN ISMR, labels, truth
# --------------------------------------------------------------------------------------------

_GLOBAL_ATTRS = {
    "Project": "THEMIS",
    "Source_name": "THG_L1>THEMIS Ground Based Observatory",
    "Discipline": ["Space Physics>Magnetospheric Science", "Space Physics>Ionospheric Science"],
    "Instrument_type": "Ground-Based VLF/ELF/ULF, Photometrics",
    "Mission_group": "THEMIS",
    "PI_name": "V. Angelopoulos, S. Mende & E. Donovan",
    "PI_affiliation": "UCB & Univ of Calgary respectively, NASA NAS5-02099",
    "Acknowledgement": "NASA Contract NAS5-02099",
    "Rules_of_use": "Open Data for Scientific Use",
    "Generated_by": "latentsky synthetic_aurora (SYNTHETIC DEMO DATA, not observations)",
    "Generation_date": "synthetic",
    "MODS": "synthetic demo data written by latentsky",
    "ADID_ref": "NSSD0110",
    "File_naming_convention": "source_datatype_descriptor",
    "HTTP_LINK": ["http://sprg.ssl.berkeley.edu/themis", "http://aurora.phys.ucalgary.ca/themis"],
    "LINK_TEXT": ["http://sprg.ssl.berkeley.edu/themis", "http://aurora.phys.ucalgary.ca/themis"],
    "LINK_TITLE": ["THEMIS GBO portal", "THEMIS-Canada portal"],
}
_UINT2, _REAL4, _REAL8, _EPOCH = 12, 21, 22, 31


def _global_attrs(extra: dict) -> dict:
    merged = {**_GLOBAL_ATTRS, **extra}
    return {
        name: dict(enumerate(value if isinstance(value, list) else [value]))
        for name, value in merged.items()
    }


def _zvar(name, data_type, dims, rec_vary=True, compress=0, block=1) -> dict:
    return {
        "Variable": name,
        "Data_Type": data_type,
        "Num_Elements": 1,
        "Rec_Vary": rec_vary,
        "Dim_Sizes": list(dims),
        "Compress": compress,
        "Block_Factor": block,
    }


def _unix_ms(times: np.ndarray) -> np.ndarray:
    return (
        (times.astype("datetime64[ms]") - np.datetime64(0, "ms"))
        .astype(np.int64)
        .astype(np.float64)
    )


def write_l1_cdf(
    path: Path, site: str, hour: dt.datetime, frames: np.ndarray, times: np.ndarray
) -> None:
    """Write one Berkeley level-1 ASI CDF.

    ``frames``: (N, size, size) uint16 counts, already in Berkeley (180-degree rotated) orientation;
    ``times``: (N,) ``datetime64[ms]`` exposure starts (UTC). Variables and attributes follow the
    real files: ``thg_asf_<site>`` (gzip-compressed, record-varying), ``_epoch`` (CDF_EPOCH, ms since
    0000-01-01), ``_time`` (whole UNIX seconds of the cadence step) and ``_tend``, ``_epoch0``,
    ``_column``, ``_row`` and ``range_epoch``.
    """
    size = frames.shape[-1]
    unix_ms = _unix_ms(times)
    epoch = unix_ms + _MS_1970_IN_CDF_EPOCH
    step_s = np.floor(unix_ms / 1000.0)
    v = f"thg_asf_{site}"
    path.parent.mkdir(parents=True, exist_ok=True)
    logical = f"thg_l1_asf_{site}_{hour:%Y%m%d%H}_v01"
    cdf = CDF(str(path), cdf_spec={"Majority": "row_major", "Encoding": 6}, delete=True)
    try:
        cdf.write_globalattrs(
            _global_attrs(
                {
                    "Data_type": "ASF>All Sky Imager, Full resolution images, High resolution",
                    "Descriptor": f"{site.upper()}>synthetic demo site",
                    "Data_version": "1",
                    "TEXT": "Synthetic stand-in for THEMIS Ground Based Observatory level-1 images",
                    "Logical_source": f"thg_l1_asf_{site}",
                    "Logical_file_id": logical,
                    "Logical_source_description": "Ground-based All Sky Imager, 3sec Level-1, THEMIS GBO network",
                    "Time_resolution": "3s",
                }
            )
        )
        epoch_range = [[63145526400000.0, "CDF_EPOCH"], [66301199999999.0, "CDF_EPOCH"]]
        cdf.write_var(
            _zvar(v, _UINT2, (size, size), compress=1, block=7),
            var_attrs={
                "CATDESC": f"Images of {size}x{size} pixels",
                "DEPEND_0": f"{v}_epoch",
                "DEPEND_1": f"{v}_column",
                "DEPEND_2": f"{v}_row",
                "DEPEND_EPOCH0": f"{v}_epoch0",
                "DEPEND_TIME": f"{v}_time",
                "DISPLAY_TYPE": "image",
                "FIELDNAM": v,
                "FILLVAL": [65535, "CDF_UINT2"],
                "FORMAT": "I5",
                "LABLAXIS": "Width",
                "UNITS": "counts",
                "VALIDMAX": [65535, "CDF_UINT2"],
                "VALIDMIN": [0, "CDF_UINT2"],
                "VAR_TYPE": "data",
            },
            var_data=np.ascontiguousarray(frames, dtype=np.uint16),
        )
        for axis, what, label in (
            ("column", "column (x-dim, Width)", "wpix#"),
            ("row", "row (y-dim, Height)", "hpix#"),
        ):
            cdf.write_var(
                _zvar(f"{v}_{axis}", _UINT2, (size,), rec_vary=False),
                var_attrs={
                    "CATDESC": f"Number of {what} in image",
                    "DICT_KEY": "number",
                    "FIELDNAM": f"{v}_{axis}",
                    "FILLVAL": [65535, "CDF_UINT2"],
                    "FORMAT": "I5",
                    "LABLAXIS": label,
                    "UNITS": label,
                    "VALIDMAX": [size - 1, "CDF_UINT2"],
                    "VALIDMIN": [0, "CDF_UINT2"],
                    "VAR_TYPE": "support_data",
                },
                var_data=np.arange(size, dtype=np.uint16),
            )
        for name, values, notes in (
            ("time", step_s, "Unleaped seconds"),
            ("tend", step_s + 0.9816, "Unleaped seconds, end time of integration"),
        ):
            cdf.write_var(
                _zvar(f"{v}_{name}", _REAL8, ()),
                var_attrs={
                    "CATDESC": f"{v}_{name}, UTC, in seconds since 01-Jan-1970 00:00:00",
                    "FIELDNAM": f"{v}_{name}",
                    "FILLVAL": [np.nan, "CDF_REAL8"],
                    "FORMAT": "E12.2",
                    "LABLAXIS": "UT",
                    "UNITS": "sec",
                    "VALIDMAX": [5000000000.0, "CDF_REAL8"],
                    "VALIDMIN": [0.0, "CDF_REAL8"],
                    "VAR_NOTES": notes,
                    "VAR_TYPE": "support_data",
                },
                var_data=values,
            )
        cdf.write_var(
            _zvar(f"{v}_epoch", _EPOCH, ()),
            var_attrs={
                "CATDESC": "Epoch of start of image exposure",
                "COMPONENT_0": f"{v}_epoch0",
                "COMPONENT_1": f"{v}_time",
                "FIELDNAM": f"{v}_epoch",
                "FILLVAL": [-1e31, "CDF_EPOCH"],
                "FUNCT": "comp_themis_epoch",
                "LABLAXIS": "UT",
                "VALIDMAX": epoch_range[1],
                "VALIDMIN": epoch_range[0],
                "VAR_TYPE": "support_data",
                "VIRTUAL": "TRUE",
            },
            var_data=epoch,
        )
        cdf.write_var(
            _zvar(f"{v}_epoch0", _EPOCH, (), rec_vary=False),
            var_attrs={
                "CATDESC": "EPOCH0 of THEMIS TIME BASE",
                "FIELDNAM": f"{v}_epoch0",
                "FILLVAL": [-1e31, "CDF_EPOCH"],
                "LABLAXIS": "timebase",
                "UNITS": "msec",
                "VALIDMAX": [64060675199999.0, "CDF_EPOCH"],
                "VALIDMIN": [59958230400000.0, "CDF_EPOCH"],
                "VAR_NOTES": "EPOCH of 01-Jan-1970 00:00:00",
                "VAR_TYPE": "support_data",
            },
            var_data=_MS_1970_IN_CDF_EPOCH,
        )
        cdf.write_var(
            _zvar("range_epoch", _EPOCH, ()),
            var_attrs={
                "CATDESC": "Epochs of first and last image in file",
                "FIELDNAM": "range_epoch",
                "FILLVAL": [-1e31, "CDF_EPOCH"],
                "LABLAXIS": "UT",
                "UNITS": "msec",
                "VALIDMAX": epoch_range[1],
                "VALIDMIN": epoch_range[0],
                "VAR_TYPE": "support_data",
            },
            var_data=epoch[[0, -1]],
        )
    finally:
        cdf.close()


def write_calibration_cdf(path: Path, params: DemoParams, geom: SkyGeometry) -> None:
    """Write the Berkeley calibration CDF of the site (Berkeley, 180-degree rotated, orientation).

    ``thg_asf_<site>_elev``/``_azim``: (size, size) float32 degrees, NaN outside the field of view;
    ``thg_asc_<site>_glat``/``_glon`` (degrees, east -180..180) and ``_alti`` (m): the site;
    ``thg_asf_<site>_glat``/``_glon``: (3, size + 1, size + 1) float32 pixel corners at the heights
    in ``thg_asf_<site>_alti`` (m), longitudes 0..360, NaN below the horizon. All of them follow
    the imager's rotation and optical centre (``geom.imager``).
    """
    site = params.site
    size = params.image_size

    def berkeley(a):
        return np.ascontiguousarray(np.asarray(a)[..., ::-1, ::-1], dtype=np.float32)

    imager = geom.imager
    if imager.rotation_deg == 0.0 and imager.centre_offset_px == (0.0, 0.0):
        optics = "equidistant fisheye, north up and east left"
    else:
        optics = (
            f"equidistant fisheye centred {imager.centre_offset_px} pixels (rows, columns) from the "
            f"image centre, azimuth {imager.rotation_deg % 360.0:g} degrees up"
        )
    corner_lat, corner_lon = geom.corner_maps(params)
    path.parent.mkdir(parents=True, exist_ok=True)
    cdf = CDF(str(path), cdf_spec={"Majority": "row_major", "Encoding": 6}, delete=True)
    try:
        cdf.write_globalattrs(
            _global_attrs(
                {
                    "Data_type": "ASC>All Sky Imager Calibration",
                    "Descriptor": f"{site.upper()}>synthetic demo site",
                    "Data_version": "1",
                    "TEXT": f"Synthetic calibration: {optics} "
                    "before the 180-degree rotation of Berkeley arrays",
                    "Logical_source": f"thg_l2_asc_{site}",
                    "Logical_file_id": f"thg_l2_asc_{site}_19700101_v01",
                    "Logical_source_description": "Ground-based All Sky Imager calibration",
                    "Time_resolution": "none",
                }
            )
        )

        def put(name, data_type, data, catdesc, units):
            data = np.asarray(data)
            cdf.write_var(
                _zvar(name, data_type, data.shape, rec_vary=False),
                var_attrs={
                    "CATDESC": catdesc,
                    "FIELDNAM": name,
                    "UNITS": units,
                    "VAR_TYPE": "support_data",
                },
                var_data=data,
            )

        f = f"thg_asf_{site}"
        c = f"thg_asc_{site}"
        put(f"{f}_elev", _REAL4, berkeley(geom.elevation), "Pixel elevation", "degrees")
        put(
            f"{f}_azim",
            _REAL4,
            berkeley(geom.azimuth),
            "Pixel azimuth from north through east",
            "degrees",
        )
        put(f"{c}_glat", _REAL4, np.float32(params.site_lat), "Site geographic latitude", "degrees")
        put(
            f"{c}_glon",
            _REAL4,
            np.float32(params.site_lon),
            "Site geographic longitude",
            "degrees east",
        )
        put(f"{c}_alti", _REAL4, np.float32(params.site_alt_km * 1000.0), "Site altitude", "m")
        put(
            f"{f}_alti",
            _REAL4,
            np.array(CALIBRATION_HEIGHTS_M, np.float32),
            "Mapping altitudes",
            "m",
        )
        put(
            f"{f}_glat",
            _REAL4,
            berkeley(corner_lat),
            "Geographic latitude of pixel corners",
            "degrees",
        )
        put(
            f"{f}_glon",
            _REAL4,
            berkeley(corner_lon),
            "Geographic longitude of pixel corners",
            "degrees east",
        )
        put(f"{f}_c{size}", _UINT2, np.arange(size, dtype=np.uint16), "Pixel index", "pixel")
    finally:
        cdf.close()


#: ISMR column formats (1-based column k is _ISMR_FORMATS[k - 1]).
_ISMR_SECOND_SIGNAL = ["%.2f"] + ["%.3f"] * 9 + ["%.0f", "%.3f", "%.3f", "%.2f"]
_ISMR_FORMATS = (
    ["%.0f"] * 6  # 1-6 week, TOW, SVID, RxState, azimuth, elevation
    + ["%.2f"]  # 7 C/N0
    + ["%.3f"] * 17  # 8-24 S4, S4 correction, Phi01..Phi60, code-carrier divergence, TEC, dTEC
    + ["%.0f", "%.0f", "%.0f", "%.2f", "%.3f", "%.3f", "%.2f"]  # 25-31 lock times, C/N0, SI, p
    + _ISMR_SECOND_SIGNAL  # 32-45 second signal (L2C)
    + _ISMR_SECOND_SIGNAL  # 46-59 third signal (L5)
    + ["%.3e"] * 3  # 60-62 spectral strength T on the three signals
)
assert len(_ISMR_FORMATS) == 62

_PHI_RATIOS = np.array([0.3, 0.5, 0.7, 0.9, 1.0])  # Phi01, Phi03, Phi10, Phi30, Phi60 over Phi60


def ismr_hour(
    hour: np.datetime64, sigma_minutes: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """The rows of one hourly ISMR file as a (n_rows, 62) float array (NaN = not tracked).

    ``sigma_minutes``: (60,) planted sigma_phi of each minute of the hour, rad. Satellites with
    elevation >= 30 degrees and lock time >= 200 s carry Phi60 = sigma * exp(N(0, 0.02)); the others
    (low elevation with long lock, or a fresh lock after a loss of lock) carry misleading large
    values of 0.5-3 rad. At least three satellites pass the cuts every minute.
    """
    n_good = int(rng.integers(3, 6))
    n_low = int(rng.integers(3, 6))
    n_fresh = int(rng.integers(1, 3))
    n_good += max(0, 8 - (n_good + n_low + n_fresh))
    roles = ["good"] * n_good + ["low"] * n_low + ["fresh"] * n_fresh
    n_sat = len(roles)
    svid = rng.choice(np.arange(1, 33), size=n_sat, replace=False)
    minutes = np.arange(60)
    minute_end = hour.astype("datetime64[ms]") + (minutes + 1) * np.timedelta64(60000, "ms")
    week, tow = utc_to_gps(minute_end)
    rows = []
    for s in range(n_sat):
        role = roles[s]
        el_range = (11.0, 27.0) if role == "low" else (33.0, 85.0)
        el_start, el_end = rng.uniform(*el_range, 2)
        elevation = np.rint(el_start + (el_end - el_start) * (minutes + 0.5) / 60.0)
        azimuth = np.rint(
            (rng.uniform(0, 360) + rng.uniform(-30, 30) * (minutes + 0.5) / 60.0) % 360.0
        )
        lock = rng.integers(600, 20000) + 60 * minutes
        if role == "fresh":
            lock = np.empty(60, np.int64)
            current = int(rng.integers(250, 3000))
            next_loss = int(rng.integers(0, 6))
            for m in minutes:
                if m == next_loss:
                    current = int(rng.integers(5, 56))
                    next_loss = m + int(rng.integers(3, 9))
                else:
                    current += 60
                lock[m] = current
        good = (elevation >= 30) & (lock >= 200)
        phi60 = np.where(
            good,
            sigma_minutes * np.exp(rng.normal(0.0, 0.02, 60)),
            np.exp(rng.uniform(math.log(0.5), math.log(3.0), 60)),
        )
        cn0 = 36.0 + 12.0 * np.sin(np.radians(elevation)) + rng.normal(0.0, 0.7, 60)
        s4 = np.where(good, 0.02 + 0.3 * phi60, rng.uniform(0.15, 0.6, 60)) + rng.uniform(
            0, 0.02, 60
        )
        tec0 = rng.uniform(8.0, 30.0)
        table = np.full((60, 62), np.nan)
        table[:, 0] = week
        table[:, 1] = np.rint(tow)
        table[:, 2] = svid[s]
        table[:, 3] = 1
        table[:, 4] = azimuth
        table[:, 5] = elevation
        table[:, 6] = cn0
        table[:, 7] = s4
        table[:, 8] = rng.uniform(0.005, 0.02, 60)
        table[:, 9:14] = (
            phi60[:, None] * _PHI_RATIOS[None, :] * np.exp(rng.normal(0.0, 0.03, (60, 5)))
        )
        table[:, 13] = phi60
        table[:, 14] = rng.normal(0.0, 0.05, 60)  # average code-carrier divergence, m
        table[:, 15] = np.where(good, rng.uniform(0.01, 0.05, 60), rng.uniform(0.05, 0.3, 60))
        drift = tec0 + np.cumsum(rng.normal(0.0, 0.05, 60))
        for j in range(4):  # TEC at TOW-45, -30, -15, 0 s and its change over the previous 15 s
            table[:, 16 + 2 * j] = drift + 0.01 * j
            table[:, 17 + 2 * j] = rng.normal(0.0, 0.02, 60)
        table[:, 24] = lock
        table[:, 25] = 0  # SBF2ISMR version and flags
        table[:, 26] = np.maximum(lock - rng.integers(0, 30), 0)
        table[:, 27] = cn0 - 4.0 + rng.normal(0.0, 0.5, 60)
        table[:, 28] = rng.uniform(0.01, 0.05, 60)  # SI index
        table[:, 29] = rng.uniform(0.002, 0.01, 60)  # SI numerator
        table[:, 30] = rng.uniform(1.5, 3.0, 60)  # spectral slope p
        table[:, 59] = rng.uniform(1e-5, 1e-3, 60)  # spectral strength T on L1
        for block, fraction, scale in ((31, 0.7, 1.28), (45, 0.35, 1.34)):
            if rng.random() < fraction:  # the satellite transmits this signal
                table[:, block] = cn0 - 5.0 + rng.normal(0.0, 0.7, 60)
                table[:, block + 1] = s4 * 1.3
                table[:, block + 2] = rng.uniform(0.005, 0.02, 60)
                table[:, block + 3 : block + 8] = table[:, 9:14] * scale
                table[:, block + 8] = rng.normal(0.0, 0.05, 60)
                table[:, block + 9] = table[:, 15] * 1.2
                table[:, block + 10] = table[:, 26]
                table[:, block + 11] = rng.uniform(0.01, 0.05, 60)
                table[:, block + 12] = rng.uniform(0.002, 0.01, 60)
                table[:, block + 13] = rng.uniform(1.5, 3.0, 60)
                table[:, 60 if block == 31 else 61] = rng.uniform(1e-5, 1e-3, 60)
        rows.append(table)
    table = np.concatenate(rows)
    order = np.lexsort((table[:, 2], table[:, 1]))  # by time, then SVID, as the receiver writes
    return table[order]


def format_ismr(table: np.ndarray) -> str:
    """Septentrio ISMR text for a (n_rows, 62) table: comma-separated, no header, ``nan`` gaps."""
    # One %-format per row (printf writes NaN as "nan", as the receiver software does).
    row_format = ",".join(_ISMR_FORMATS)
    return "".join(row_format % tuple(row) + "\n" for row in table.tolist())


def _write_gzip(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with (
        path.open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) as gz,
    ):
        gz.write(text.encode("ascii"))


def _iso(t: np.datetime64) -> str:
    return str(t.astype("datetime64[ms]")) + "Z"


def frame_times(hour: dt.datetime, cadence_s: float, rng: np.random.Generator) -> np.ndarray:
    """Exposure starts in one UT hour, ``datetime64[ms]``: ~3 s after each cadence step.

    Each frame starts ``FRAME_DELAY_S`` plus 10-89 ms after its step (like hh:mm:03.05), and all
    fall inside the hour.
    """
    start = np.datetime64(hour, "ms")
    step_ms = int(round(cadence_s * 1000))
    n = (3600_000 - int(FRAME_DELAY_S * 1000) - 90 - 1) // step_ms + 1
    jitter = rng.integers(10, 90, n)
    offsets = np.arange(n) * step_ms + int(FRAME_DELAY_S * 1000) + jitter
    return start + offsets.astype("timedelta64[ms]")


# --------------------------------------------------------------------------------------------
# Sites
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoSite:
    """One site of a multi-site demo: a THEMIS imager beside a CHAIN GNSS receiver.

    ``site``/``station``: THEMIS site and CHAIN station codes; ``lat``/``lon`` (degrees, east
    positive, -180..180) and ``alt_km`` place both. ``seed`` draws the site's scenes, labels, star
    catalogue and fixed-pattern noise: sites with different seeds see independent scenes with the
    same class statistics. ``imager``: the site's camera (a mapping of :class:`Imager` fields is
    accepted, as from a YAML config). ``sigma_phi_mu_offset``: added to every class's mu of
    ln(sigma_phi / rad), the station's own scintillation level; a common shift keeps discrete and
    arc aurora highest at every site.
    """

    site: str
    station: str
    lat: float
    lon: float
    alt_km: float
    seed: int
    imager: Imager = Imager()
    sigma_phi_mu_offset: float = 0.0

    def __post_init__(self):
        if isinstance(self.imager, Mapping):
            object.__setattr__(self, "imager", Imager(**self.imager))

    def lognormal(self) -> dict[str, tuple[float, float]]:
        """The planted (mu, sigma) of ln(sigma_phi / rad) per class at this site."""
        return {
            cls: (round(mu + self.sigma_phi_mu_offset, 6), sd)
            for cls, (mu, sd) in SIGMA_PHI_LOGNORMAL.items()
        }


#: A four-site demo whose cameras differ the way real THEMIS imagers do, strongly enough that
#: naive latents separate by site. FSIM keeps the reference camera and seed 0 (with the default
#: nights, hours, cadence and size its files are the single-site demo's); the others are turned by tens of degrees, have their optical centre
#: several pixels off, biases hundreds of counts apart, gains tens of percent apart (with photon
#: noise to match), other vignetting and read noise, trees or buildings on the horizon (GILL,
#: FSMI) and a bright town (RANK). Positions are the THEMIS sites' (altitudes approximate).
DEFAULT_SITES = (
    DemoSite("fsim", "fsi", 61.76, -121.23, 0.27, seed=0),
    DemoSite(
        "gill",
        "gil",
        56.38,
        -94.64,
        0.14,
        seed=1,
        imager=Imager(
            rotation_deg=35.0,
            centre_offset_px=(5.0, -4.0),
            vignetting_floor=0.3,
            vignetting_power=2.2,
            bias_counts=450.0,
            gain=1.3,
            read_noise_counts=14.0,
            counts_per_pe=2.6,
            obstructions=((200.0, 290.0, 14.0),),  # a forest edge to the south-west
            light_dome_counts=0.0,
        ),
        sigma_phi_mu_offset=0.2,
    ),
    DemoSite(
        "rank",
        "ran",
        62.82,
        -92.11,
        0.03,
        seed=2,
        imager=Imager(
            rotation_deg=-50.0,
            centre_offset_px=(-3.0, 6.0),
            vignetting_floor=0.7,
            vignetting_power=1.0,
            bias_counts=-350.0,
            gain=0.75,
            read_noise_counts=7.0,
            counts_per_pe=1.5,
            light_dome_azimuth_deg=20.0,  # the hamlet, close by to the north-north-east
            light_dome_counts=3000.0,
        ),
        sigma_phi_mu_offset=-0.15,
    ),
    DemoSite(
        "fsmi",
        "fsm",
        60.03,
        -111.93,
        0.2,
        seed=3,
        imager=Imager(
            rotation_deg=80.0,
            centre_offset_px=(4.0, 4.0),
            vignetting_floor=0.55,
            vignetting_power=1.2,
            bias_counts=200.0,
            gain=1.15,
            read_noise_counts=11.0,
            counts_per_pe=2.3,
            # A building to the east and a ridge across north.
            obstructions=((95.0, 125.0, 20.0), (330.0, 20.0, 8.0)),
            light_dome_azimuth_deg=250.0,
            light_dome_counts=1500.0,
        ),
        sigma_phi_mu_offset=0.1,
    ),
)


# --------------------------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------------------------


@dataclass
class _SiteArchives:
    """What one site's pass wrote and planted."""

    calibration_cdf: Path
    l1_cdfs: list[Path]
    ismr_files: list[Path]
    #: (ISO time, class, sigma_phi in rad) of every frame, in time order.
    truth_rows: list[tuple[str, str, float]]
    #: Indices into ``truth_rows`` of the labelled frames, ascending.
    labelled: list[int]
    frames_per_class: dict[str, int]


def _write_site_archives(
    mirror_dir: Path,
    params: DemoParams,
    imager: Imager,
    lognormal: dict[str, tuple[float, float]],
    sky_seed: int | None = None,
) -> _SiteArchives:
    """Render one site into the mirror (calibration, level-1 CDFs, ISMR files); draw its labels.
    ``sky_seed`` chooses the star catalogue and the moon (None: the site's own seed)."""
    renderer = Renderer(params, imager, sky_seed)
    episodes_by_night, contexts, sigma = plan_nights(params, lognormal, sky_seed)

    cal_path = mirror_dir / "themis_cal" / layouts.berkeley_calibration_cdf(params.site)
    write_calibration_cdf(cal_path, params, renderer.geom)

    cdf_paths, ismr_paths = [], []
    truth_rows: list[tuple[str, str, float]] = []
    for k, night_date in enumerate(params.nights):
        episodes, night = episodes_by_night[k], contexts[k]
        night_start = np.datetime64(
            dt.datetime.combine(night_date, dt.time(params.first_hour)), "ms"
        )
        for h, hour in enumerate(
            layouts.hours_of_night(night_date, params.first_hour, params.last_hour)
        ):
            frame_rng = np.random.default_rng([params.seed, _STREAM_FRAMES, k, h])
            noise_rng = np.random.default_rng([params.seed, _STREAM_NOISE, k, h])
            times = frame_times(hour, params.cadence_s, frame_rng)
            frames = np.empty((times.size, params.image_size, params.image_size), np.uint16)
            for i, when in enumerate(times):
                t_night_min = (when - night_start) / np.timedelta64(60000, "ms")
                minute = int(t_night_min)
                ep = next(e for e in episodes if e.start <= minute < e.stop)
                image = renderer.render(ep, night, when, t_night_min, frame_rng, noise_rng)
                frames[i] = image[::-1, ::-1]  # Berkeley orientation
                truth_rows.append((_iso(when), ep.cls, float(sigma[k, minute])))
            cdf_path = mirror_dir / "themis_l1" / layouts.berkeley_l1_cdf(params.site, hour)
            write_l1_cdf(cdf_path, params.site, hour, frames, times)
            cdf_paths.append(cdf_path)

            ismr_rng = np.random.default_rng([params.seed, _STREAM_ISMR, k, h])
            table = ismr_hour(np.datetime64(hour, "ms"), sigma[k, h * 60 : (h + 1) * 60], ismr_rng)
            ismr_path = mirror_dir / "chain_ismr" / layouts.chain_ismr(params.station, hour)
            _write_gzip(ismr_path, format_ismr(table))
            ismr_paths.append(ismr_path)

    # Labels: the same fraction of every class, drawn at random (at least one frame per class).
    label_rng = np.random.default_rng([params.seed, _STREAM_LABELS])
    classes_of_frames = np.array([row[1] for row in truth_rows])
    chosen = []
    for cls in CLASSES:
        members = np.flatnonzero(classes_of_frames == cls)
        n = int(round(params.labelled_fraction * members.size))
        if params.labelled_fraction > 0 and members.size:
            n = max(n, 1)
        chosen.extend(label_rng.choice(members, size=n, replace=False).tolist())
    return _SiteArchives(
        calibration_cdf=cal_path,
        l1_cdfs=cdf_paths,
        ismr_files=ismr_paths,
        truth_rows=truth_rows,
        labelled=sorted(chosen),
        frames_per_class={cls: int((classes_of_frames == cls).sum()) for cls in CLASSES},
    )


def _write_labels(labels_path: Path, archives: dict[str, _SiteArchives]) -> None:
    """``time,site,label`` rows of the labelled frames, site by site (in the given order)."""
    labels_path.parent.mkdir(parents=True, exist_ok=True)
    with labels_path.open("w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["time", "site", "label"])
        for site, out in archives.items():
            for i in out.labelled:
                writer.writerow([out.truth_rows[i][0], site, out.truth_rows[i][1]])


def _lognormal_json(lognormal: dict[str, tuple[float, float]]) -> dict:
    return {c: {"mu": m, "sigma": s} for c, (m, s) in lognormal.items()}


def generate_demo_mirror(
    mirror_dir: Path, labels_path: Path, truth_dir: Path, params: DemoParams
) -> dict:
    """Write the demo mirror, the label CSV and the truth files of one site; return a summary.

    ``mirror_dir`` gets ``themis_l1/`` (level-1 CDFs), ``themis_cal/`` (calibration CDF) and
    ``chain_ismr/`` (ISMR files), each in the remote archive's own layout. ``labels_path`` gets
    ``time,site,label`` rows for a random ``labelled_fraction`` of the frames of every class.
    ``truth_dir`` gets ``truth.csv`` (``time,class,sigma_phi`` for every frame, sigma_phi in rad)
    and ``planted.json`` (the classes, their (mu, sigma) of ln sigma_phi and the parameters). The
    camera is the reference one (a neutral :class:`Imager`).

    The summary holds the written paths and the number of frames per class. The same parameters
    (seed included) give identical files: byte for byte, except the level-1 CDFs, whose variables
    are identical but whose gzip headers carry the time cdflib wrote them.
    """
    params.validate()
    mirror_dir, labels_path, truth_dir = Path(mirror_dir), Path(labels_path), Path(truth_dir)
    out = _write_site_archives(mirror_dir, params, Imager(), SIGMA_PHI_LOGNORMAL)
    _write_labels(labels_path, {params.site: out})

    truth_dir.mkdir(parents=True, exist_ok=True)
    with (truth_dir / "truth.csv").open("w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["time", "class", "sigma_phi"])
        for time, cls, s in out.truth_rows:
            writer.writerow([time, cls, f"{s:.6g}"])
    planted = {
        "classes": list(CLASSES),
        "sigma_phi_lognormal": _lognormal_json(SIGMA_PHI_LOGNORMAL),
        "frames_per_class": out.frames_per_class,
        "params": {**asdict(params), "nights": [d.isoformat() for d in params.nights]},
    }
    (truth_dir / "planted.json").write_text(json.dumps(planted, indent=2) + "\n")

    return {
        "l1_cdfs": out.l1_cdfs,
        "calibration_cdf": out.calibration_cdf,
        "ismr_files": out.ismr_files,
        "labels": labels_path,
        "truth_csv": truth_dir / "truth.csv",
        "planted_json": truth_dir / "planted.json",
        "n_frames": len(out.truth_rows),
        "n_labelled": len(out.labelled),
        "frames_per_class": out.frames_per_class,
    }


def generate_multisite_mirror(
    mirror_dir: Path,
    labels_path: Path,
    truth_dir: Path,
    sites: Sequence[DemoSite] = DEFAULT_SITES,
    nights: Sequence[dt.date] | None = None,
    first_hour: int = DemoParams.first_hour,
    last_hour: int = DemoParams.last_hour,
    cadence_s: float = DemoParams.cadence_s,
    labelled_fraction: float = DemoParams.labelled_fraction,
    image_size: int = DemoParams.image_size,
) -> dict:
    """Write several sites into one demo mirror, one label CSV and one truth folder.

    Every site covers the same ``nights`` (default: those of :class:`DemoParams`), UT hours
    ``first_hour..last_hour``, cadence (s), ``labelled_fraction`` and ``image_size`` (pixels), as
    in :class:`DemoParams`; its scenes, camera and planted sigma_phi relation are its own
    (:class:`DemoSite`), while the stars are one catalogue (the first site's) for all: one sky,
    seen from several places. ``mirror_dir`` gets every site's level-1 CDFs, calibration CDF and its
    station's ISMR files in the archives' layouts (the paths name the site or station).
    ``labels_path`` gets ``time,site,label`` rows, site by site (times of different sites may
    coincide). ``truth_dir`` gets ``truth.csv`` (``time,site,class,sigma_phi``, sigma_phi in rad)
    and ``planted.json``: the classes, the common parameters (``params``) and per site (``sites``)
    its station, position, seed, imager, mu offset, planted (mu, sigma) per class and frames per
    class.

    A site rendered with the same position, seed and a neutral imager gets exactly the files the
    single-site :func:`generate_demo_mirror` writes. The time grows linearly with the number of
    sites, and the same arguments give identical files (as for :func:`generate_demo_mirror`).

    Returns a summary: ``sites`` (per site: its paths, ``n_frames``, ``n_labelled`` and
    ``frames_per_class``), ``labels``, ``truth_csv``, ``planted_json``, ``n_sites``, ``n_frames``
    and ``n_labelled``.
    """
    if nights is None:
        nights = _default_nights()
    sites = list(sites)
    if not sites:
        raise ValueError("sites: need at least one")
    for what in ("site", "station", "seed"):
        values = [getattr(s, what) for s in sites]
        if len(set(values)) != len(values):
            raise ValueError(f"sites: each needs its own {what}, got {values}")
    site_params = {}
    for s in sites:
        params = DemoParams(
            site=s.site,
            station=s.station,
            site_lat=s.lat,
            site_lon=s.lon,
            site_alt_km=s.alt_km,
            nights=list(nights),
            first_hour=first_hour,
            last_hour=last_hour,
            cadence_s=cadence_s,
            labelled_fraction=labelled_fraction,
            seed=s.seed,
            image_size=image_size,
        )
        params.validate()
        s.imager.validate(image_size)
        if abs(s.sigma_phi_mu_offset) > 0.5:
            raise ValueError(
                f"sigma_phi_mu_offset of {s.site}: at most 0.5 in magnitude (beyond that one "
                f"site's diffuse aurora outscintillates another's arcs), got {s.sigma_phi_mu_offset}"
            )
        site_params[s.site] = params

    mirror_dir, labels_path, truth_dir = Path(mirror_dir), Path(labels_path), Path(truth_dir)
    archives = {
        s.site: _write_site_archives(
            mirror_dir, site_params[s.site], s.imager, s.lognormal(), sky_seed=sites[0].seed
        )
        for s in sites
    }
    _write_labels(labels_path, archives)

    truth_dir.mkdir(parents=True, exist_ok=True)
    with (truth_dir / "truth.csv").open("w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["time", "site", "class", "sigma_phi"])
        for site, out in archives.items():
            for time, cls, s in out.truth_rows:
                writer.writerow([time, site, cls, f"{s:.6g}"])
    planted = {
        "classes": list(CLASSES),
        "params": {
            "nights": [d.isoformat() for d in nights],
            "first_hour": first_hour,
            "last_hour": last_hour,
            "cadence_s": cadence_s,
            "labelled_fraction": labelled_fraction,
            "image_size": image_size,
        },
        "sites": {
            s.site: {
                "station": s.station,
                "lat": s.lat,
                "lon": s.lon,
                "alt_km": s.alt_km,
                "seed": s.seed,
                "imager": asdict(s.imager),
                "sigma_phi_mu_offset": s.sigma_phi_mu_offset,
                "sigma_phi_lognormal": _lognormal_json(s.lognormal()),
                "frames_per_class": archives[s.site].frames_per_class,
            }
            for s in sites
        },
    }
    (truth_dir / "planted.json").write_text(json.dumps(planted, indent=2) + "\n")

    per_site = {
        site: {
            "l1_cdfs": out.l1_cdfs,
            "calibration_cdf": out.calibration_cdf,
            "ismr_files": out.ismr_files,
            "n_frames": len(out.truth_rows),
            "n_labelled": len(out.labelled),
            "frames_per_class": out.frames_per_class,
        }
        for site, out in archives.items()
    }
    return {
        "sites": per_site,
        "labels": labels_path,
        "truth_csv": truth_dir / "truth.csv",
        "planted_json": truth_dir / "planted.json",
        "n_sites": len(sites),
        "n_frames": sum(v["n_frames"] for v in per_site.values()),
        "n_labelled": sum(v["n_labelled"] for v in per_site.values()),
    }


def demo_sites(sites: Sequence[dict], seed: int = 0) -> list[DemoSite]:
    """The :data:`DEFAULT_SITES` a config names (``[{"site": ..., "station": ...}]``), their
    seeds shifted by ``seed``; ValueError naming a site that is not a demo site or a station that
    is not its own."""
    known = {demo.site: demo for demo in DEFAULT_SITES}
    chosen = []
    for item in sites:
        demo = known.get(item["site"])
        if demo is None:
            raise ValueError(f"{item['site']} is not a demo site; demo sites: {sorted(known)}")
        if item.get("station", demo.station) != demo.station:
            raise ValueError(
                f"the demo's {demo.site} has station {demo.station}, not {item['station']}"
            )
        chosen.append(dataclasses.replace(demo, seed=demo.seed + 1000 * seed))
    return chosen
