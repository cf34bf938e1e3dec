"""Colour channels of photometer windows: the band ratio in physical flux, flat on quiet sky."""

from __future__ import annotations

import numpy as np
import pytest

from latentsky.samples.colours import LOG_RATIO_SCALE, Colours

BANDS = ("PHOT1", "PHOT2", "PHOT3")


def windows(signal_337, signal_777, sky=(2.0, 0.2, 5.0), gain=1.0, n=400, seed=0):
    """One window per row of photon-counting sky plus the given signals (uW/m^2)."""
    rng = np.random.default_rng(seed)
    flux = np.empty((len(signal_337), 3, n))
    for w, (a, c) in enumerate(zip(signal_337, signal_777, strict=True)):
        expected = np.stack([sky[0] + a, np.full(n, sky[1]), sky[2] + c])
        flux[w] = rng.poisson(expected * 20 * gain) / (20 * gain)
    return flux


def pulse(n=400, at=150, length=120, amplitude=1.0):
    out = np.zeros(n)
    out[at : at + length] = amplitude
    return out


def test_colour_is_the_flux_ratio_where_the_light_is_bright():
    colours = Colours(pairs=(("PHOT1", "PHOT3"),))
    for ratio in (0.1, 0.5, 2.0, 10.0):
        flux = windows([pulse(amplitude=40 * ratio)], [pulse(amplitude=40.0)])
        colour = colours.apply(flux, BANDS)[0, 0]
        expected = 0.5 + 0.5 * np.tanh(np.log(ratio) / LOG_RATIO_SCALE)
        # Inside the pulse, away from its smoothed edges.
        assert np.median(colour[160:260]) == pytest.approx(expected, abs=0.03), ratio


def test_quiet_sky_reads_as_the_same_noise_around_no_colour_whatever_its_tint():
    """No event: the colour is noise centred on 0.5, the same over a blue, a red or a dark sky
    (the sky's own tint is not an event's colour), and never a constant (see the module)."""
    colours = Colours(pairs=(("PHOT1", "PHOT3"), ("PHOT2", "PHOT3")))
    zero = np.zeros(400)
    spreads = []
    for sky in ((2.0, 0.2, 5.0), (0.3, 0.05, 8.0), (4.0, 0.5, 0.5)):
        colour = colours.apply(windows([zero] * 20, [zero] * 20, sky=sky, seed=1), BANDS)
        np.testing.assert_allclose(np.median(colour, axis=(0, 2)), 0.5, atol=0.01)
        assert np.percentile(np.abs(colour - 0.5), 99) < 0.25, sky
        spreads.append(colour.std(axis=(0, 2)))
    assert 0.03 < np.min(spreads) and np.max(spreads) < 0.12
    np.testing.assert_allclose(spreads, np.mean(spreads), rtol=0.1)


def test_colour_does_not_depend_on_the_sky_under_the_event():
    """The same event (337 nm at 3 times 777.4 nm) over a dark and a bright sky reads alike."""
    colours = Colours(pairs=(("PHOT1", "PHOT3"),))
    event_337, event_777 = pulse(amplitude=60.0), pulse(amplitude=20.0)
    dark = colours.apply(windows([event_337], [event_777], sky=(0.3, 0.05, 0.5)), BANDS)
    bright = colours.apply(windows([event_337], [event_777], sky=(4.0, 0.5, 8.0)), BANDS)
    assert np.median(dark[0, 0, 160:260]) == pytest.approx(
        np.median(bright[0, 0, 160:260]), abs=0.03
    )


def test_a_band_with_no_light_reads_as_no_light_not_as_a_random_ratio():
    """A 337 nm pulse with nothing at 777.4 nm is strongly blue; the floor keeps it finite."""
    colours = Colours(pairs=(("PHOT1", "PHOT3"),))
    colour = colours.apply(windows([pulse(amplitude=30.0)], [np.zeros(400)]), BANDS)[0, 0]
    assert 0.8 < np.median(colour[160:260]) < 1.0
    assert np.all(np.isfinite(colour))


def test_missing_samples_stay_missing_and_no_pairs_give_no_channel():
    flux = windows([pulse(amplitude=30.0)], [pulse(amplitude=10.0)])
    flux[0, 2, 50:60] = np.nan
    colour = Colours(pairs=(("PHOT1", "PHOT3"),)).apply(flux, BANDS)[0, 0]
    assert np.isnan(colour[50:60]).all() and np.isfinite(colour[:50]).all()
    assert Colours().apply(flux, BANDS).shape == (1, 0, 400)


def test_bad_colour_settings_are_refused_naming_the_band():
    with pytest.raises(ValueError, match="two different bands"):
        Colours(pairs=(("PHOT1", "PHOT1"),))
    with pytest.raises(ValueError, match="odd"):
        Colours(pairs=(("PHOT1", "PHOT3"),), smooth=4)
    with pytest.raises(ValueError, match="PHOT9"):
        Colours(pairs=(("PHOT9", "PHOT3"),)).apply(np.zeros((1, 3, 10)), BANDS)
