"""Per-sample anomaly scores of a trained VAE: the negative evidence lower bound (ELBO).

For a window ``x`` with posterior ``q(z|x) = N(mu, diag sigma^2)``, standard normal prior and Beta
observation model,

    ELBO(x) = E_q[ log p(x | z) ] - KL(q(z|x) || N(0, I)),
    log p(x | z) = sum over bands and samples of log Beta(x; alpha(z), beta(z)),
    KL = 0.5 * sum(sigma^2 + mu^2 - 2 log sigma - 1).

The negative ELBO is an upper bound on ``-log p(x)``: the number of nats the model needs to
describe the window, high for windows unlike those it was trained on. The KL term enters with
weight 1 here whatever ``kl_weight`` the model was trained with, so that the score is the ELBO
proper.

With ``n_samples=0`` (the default) the expectation is taken at the posterior mean, as the
training loop's validation loss does (deterministic, one decoder pass); with ``n_samples=k`` it is
the Monte Carlo mean over ``k`` reparameterised draws from a seeded generator (reproducible).
Data are cleaned as the model's loss does: NaN samples are left out of the likelihood, the rest
clamped into ``[BETA_DATA_MIN, BETA_DATA_MAX]``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from latentsky.models import LatentModel
from latentsky.models.beta_vae import BETA_DATA_MAX, BETA_DATA_MIN
from latentsky.models.feed import ordered_batches
from latentsky.models.training import as_source, resolve_device


def _is_vae(model: LatentModel) -> bool:
    return all(hasattr(model, name) for name in ("posterior", "beta_log_likelihood"))


@torch.no_grad()
def elbo_terms(
    model: LatentModel,
    batch: torch.Tensor,
    n_samples: int = 0,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-window expected log-likelihood and KL of a Beta VAE.

    Args:
        model: a VAE with ``posterior(x) -> (mu, logvar)``, ``decode(z) -> (alpha, beta)`` and
            ``beta_log_likelihood`` (e.g. :class:`~latentsky.models.BetaVAE1d`).
        batch: windows ``(B, band, sample)`` scaled into [0, 1], NaN allowed.
        n_samples: 0 for the posterior mean, else the number of draws of z.
        generator: torch generator for the draws (on the batch's device).

    Returns:
        ``(loglik, kl)``, each float32 ``(B,)``, in nats.
    """
    if not _is_vae(model):
        raise TypeError(f"model {model.name!r} has no posterior: anomaly scores need a VAE")
    mask = torch.isfinite(batch)
    x = torch.where(mask, batch, 0.5).clamp(BETA_DATA_MIN, BETA_DATA_MAX)
    mu, logvar = model.posterior(x)
    kl = 0.5 * (logvar.exp() + mu**2 - logvar - 1).sum(1)
    draws = [mu] if n_samples == 0 else []
    for _ in range(n_samples):
        noise = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        draws.append(mu + torch.exp(0.5 * logvar) * noise)
    loglik = torch.zeros_like(kl)
    for z in draws:
        alpha, beta = model.decode(z)
        per_sample = model.beta_log_likelihood(x, alpha, beta)
        loglik += torch.where(mask, per_sample, 0.0).flatten(1).sum(1)
    return loglik / len(draws), kl


@torch.no_grad()
def anomaly_scores(
    model: LatentModel,
    data: Any,
    batch_size: int = 128,
    device: str | torch.device = "auto",
    n_samples: int = 0,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Negative ELBO of every window, in order.

    Args:
        model: a trained Beta VAE (see :func:`elbo_terms`); put in eval mode here.
        data: windows ``(N, band, sample)`` scaled into [0, 1]: a
            :class:`~latentsky.models.feed.SampleSource` or an array-like, read chunk by chunk (so a
            store larger than memory is fine).
        n_samples, seed: draws of z per window (0: posterior mean) and the seed of those draws.

    Returns:
        ``{"neg_elbo", "loglik", "kl"}``, each float64 ``(N,)`` in nats per window;
        ``neg_elbo = kl - loglik``.
    """
    device = resolve_device(device)
    model.to(device).eval()
    generator = torch.Generator(device=device).manual_seed(seed) if n_samples else None
    source = as_source(data)
    loglik = np.empty(source.n, dtype=np.float64)
    kl = np.empty(source.n, dtype=np.float64)
    for start, batch in ordered_batches(source, batch_size, device):
        ll, k = elbo_terms(model, batch, n_samples, generator)
        loglik[start : start + len(batch)] = ll.double().cpu().numpy()
        kl[start : start + len(batch)] = k.double().cpu().numpy()
    return {"neg_elbo": kl - loglik, "loglik": loglik, "kl": kl}
