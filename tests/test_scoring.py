"""The Beta VAE's likelihood and KL against independent calculations, anomaly scores, learning.

The photometer model is :class:`latentsky.models.BetaVAE1d`; the scores are
:func:`latentsky.analysis.scoring.anomaly_scores`. References: ``scipy.stats.beta`` for the density, the
closed form and a numerical integral for the KL divergence of a Gaussian from a standard normal.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from latentsky.analysis.scoring import anomaly_scores, elbo_terms
from latentsky.models import build_model
from latentsky.models.beta_vae import BETA_DATA_MAX, BETA_DATA_MIN, BetaVAE1d
from latentsky.models.encoding import reconstruct
from latentsky.models.training import TrainConfig, train

SMALL = {"base_channels": 4, "depth": 3, "latent_dim": 4, "max_channels": 16}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_beta_log_likelihood_matches_scipy():
    rng = np.random.default_rng(0)
    x = rng.uniform(0.001, 0.999, 200)
    a = rng.uniform(0.2, 50.0, 200)
    b = rng.uniform(0.2, 500.0, 200)
    ours = BetaVAE1d.beta_log_likelihood(
        torch.tensor(x, dtype=torch.float64),
        torch.tensor(a, dtype=torch.float64),
        torch.tensor(b, dtype=torch.float64),
    )
    # The model computes in float32 (lgamma of a few hundred keeps ~7 digits).
    np.testing.assert_allclose(ours.numpy(), stats.beta.logpdf(x, a, b), rtol=2e-5, atol=3e-3)
    # The density has (1 - x)^(b - 1), not (1 - x)^b: b = 1 makes it independent of 1 - x.
    flat = BetaVAE1d.beta_log_likelihood(
        torch.tensor([0.2, 0.7]), torch.tensor(2.0), torch.tensor(1.0)
    )
    np.testing.assert_allclose(flat.numpy(), np.log(2 * np.array([0.2, 0.7])), rtol=1e-6)


def kl_numeric(mu: float, sigma: float) -> float:
    """KL(N(mu, sigma^2) || N(0, 1)) by integrating q log(q / p) numerically."""
    q = stats.norm(mu, sigma)

    def integrand(z):
        return q.pdf(z) * (q.logpdf(z) - stats.norm.logpdf(z))

    value, _ = integrate.quad(integrand, mu - 12 * sigma, mu + 12 * sigma, limit=200)
    return value


@pytest.mark.parametrize(("mu", "sigma"), [(0.0, 1.0), (1.5, 0.3), (-2.0, 2.5), (0.1, 0.05)])
def test_kl_formula_against_closed_form_and_integral(mu, sigma):
    model = build_model("beta_vae_1d", SMALL, (3, 32), seed=0)
    # The model's KL, through its loss, for a posterior we set: patch the encoder's output.
    latent = model.latent_dim
    mean = torch.full((1, latent), mu)
    logvar = torch.full((1, latent), 2 * np.log(sigma))
    model.posterior = lambda x: (mean, logvar)  # instance attribute: only this model
    model.eval()
    _, metrics = model.loss(torch.full((1, 3, 32), 0.5))
    closed = latent * (np.log(1 / sigma) + (sigma**2 + mu**2) / 2 - 0.5)
    assert metrics["kl"] == pytest.approx(closed, rel=1e-5)
    assert metrics["kl"] == pytest.approx(latent * kl_numeric(mu, sigma), rel=1e-4, abs=1e-6)
    # The scores use the same KL.
    _, kl = elbo_terms(model, torch.full((1, 3, 32), 0.5))
    assert kl.item() == pytest.approx(closed, rel=1e-5)


def test_loss_is_negative_elbo_with_scipy_likelihood():
    model = build_model("beta_vae_1d", {**SMALL, "kl_weight": 0.5}, (3, 32), seed=1).eval()
    x = torch.rand(4, 3, 32, generator=torch.Generator().manual_seed(0))
    x[0, 1, 5] = float("nan")  # left out of the likelihood
    loss, metrics = model.loss(x)
    with torch.no_grad():
        mu, logvar = model.posterior(x)
        alpha, beta = model.decode(mu)
    clean = np.clip(np.nan_to_num(x.numpy(), nan=0.5), BETA_DATA_MIN, BETA_DATA_MAX)
    logpdf = stats.beta.logpdf(clean, alpha.numpy(), beta.numpy())
    logpdf[0, 1, 5] = 0.0
    loglik = logpdf.reshape(4, -1).sum(1)
    s2, m = np.exp(logvar.numpy()), mu.numpy()
    kl = 0.5 * (s2 + m**2 - np.log(s2) - 1).sum(1)
    assert metrics["loglik"] == pytest.approx(loglik.mean(), rel=1e-4)
    assert loss.item() == pytest.approx(-(loglik - 0.5 * kl).mean(), rel=1e-4)
    # The anomaly score is the ELBO proper (KL weight 1), per window.
    scores = anomaly_scores(model, x.numpy(), batch_size=3)
    np.testing.assert_allclose(scores["neg_elbo"], kl - loglik, rtol=1e-4)
    np.testing.assert_allclose(scores["kl"], kl, rtol=1e-4)


def test_monte_carlo_scores_are_reproducible_and_near_the_mean_score():
    model = build_model("beta_vae_1d", SMALL, (3, 32), seed=2)
    x = np.random.default_rng(1).uniform(0.2, 0.8, (6, 3, 32)).astype(np.float32)
    first = anomaly_scores(model, x, n_samples=4, seed=7)
    again = anomaly_scores(model, x, n_samples=4, seed=7)
    other = anomaly_scores(model, x, n_samples=4, seed=8)
    np.testing.assert_array_equal(first["neg_elbo"], again["neg_elbo"])
    assert not np.array_equal(first["neg_elbo"], other["neg_elbo"])
    np.testing.assert_array_equal(first["kl"], anomaly_scores(model, x)["kl"])


def test_scores_need_a_vae():
    model = build_model("res_ae", {"base_channels": 4, "depth": 2, "latent_dim": 4}, (1, 16, 16))
    with pytest.raises(TypeError, match="VAE"):
        anomaly_scores(model, np.zeros((2, 1, 16, 16), np.float32))


def planted_pulses(n: int, length: int, seed: int) -> np.ndarray:
    """Windows ``(n, 3, length)`` in (0, 1): a background level, one Gaussian pulse per window at
    a random place (different heights per band), and a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(length)
    out = np.empty((n, 3, length), np.float32)
    for i in range(n):
        centre = rng.uniform(0.2, 0.8) * length
        shape = np.exp(-0.5 * ((t - centre) / rng.uniform(2.0, 5.0)) ** 2)
        heights = rng.uniform(0.2, 0.6) * np.array([1.0, 0.3, 0.7])
        out[i] = 0.1 + heights[:, None] * shape + 0.01 * rng.standard_normal((3, length))
    return np.clip(out, 0.01, 0.99)


def test_model_reconstructs_a_planted_pulse_better_than_a_flat_line(tmp_path):
    length = 64
    data = planted_pulses(400, length, seed=0)
    model = build_model("beta_vae_1d", {**SMALL, "latent_dim": 8}, (3, length), seed=0)
    config = TrainConfig(
        epochs=25, batch_size=32, learning_rate=3e-3, validation_fraction=0.1, num_threads=1
    )
    train(model, data, config, tmp_path / "c.pt", tmp_path / "m.csv")
    held_out = planted_pulses(40, length, seed=1)
    rebuilt = reconstruct(model, held_out)
    model_error = np.mean((rebuilt - held_out) ** 2)
    # The best flat line for each window and band is its own mean.
    flat_error = np.mean((held_out - held_out.mean(axis=2, keepdims=True)) ** 2)
    assert model_error < 0.5 * flat_error
