"""Model definitions: shapes, the latent as the only encoder-decoder path, losses, the registry."""

from __future__ import annotations

import math

import pytest
import torch

from latentsky.models import MODELS, LatentModel, build_model, model_from_config
from latentsky.models.beta_vae import BetaVAE1d
from latentsky.models.blocks import depth_to_space, masked_mse, space_to_depth
from latentsky.models.res_ae import ResidualAutoencoder

pytestmark = pytest.mark.usefixtures("one_torch_thread")


SMALL = {"base_channels": 4, "latent_dim": 6}


@pytest.mark.parametrize(
    ("shape", "config"),
    [
        ((1, 64, 64), {}),  # the defaults: base 16, depth 3, latent 32
        ((1, 32, 48), {**SMALL, "depth": 2}),
        ((1, 32, 48), {**SMALL, "depth": 3}),
        ((1, 32, 48), {**SMALL, "depth": 4}),
        ((3, 50, 37), {**SMALL, "depth": 2, "blocks_per_scale": 2}),  # padded internally
    ],
)
def test_res_ae_shapes(shape, config):
    model = build_model("res_ae", config, shape, seed=0)
    x = torch.randn(3, *shape)
    x_hat, z = model(x)
    assert x_hat.shape == x.shape
    assert z.shape == (3, model.latent_dim)
    assert model.encode(x).shape == z.shape
    assert model.decode(z).shape == x.shape
    assert model.latent_dim == config.get("latent_dim", 32)


def test_res_ae_is_multiscale():
    """The latent reads every encoder scale, and every decoder scale gets its own latent projection."""
    model = build_model("res_ae", {**SMALL, "depth": 3}, (1, 32, 32), seed=0)
    channels = [4, 8, 16]
    coarse = 16 * 4 * 4  # channels of the coarsest scale x its 4x4 grid
    assert model.encoder.to_latent.in_features == coarse + sum(channels)
    assert [layer.out_features for layer in model.decoder.inject] == [4 * 16, 8 * 16]


def test_space_to_depth_round_trip():
    for x in (torch.randn(2, 3, 8, 6), torch.randn(2, 3, 10)):
        y = space_to_depth(x)
        assert y.shape[1] == 3 * 2 ** (x.ndim - 2)
        assert torch.equal(depth_to_space(y), x)


# --------------------------------------------------------------------------------------------
# The latent is the only path from encoder to decoder. The checks are helpers so that the last
# test can show that they catch a model with a bypass.


def _decoder_output(model: LatentModel, x: torch.Tensor) -> torch.Tensor:
    out = model(x)[0]
    return out[0] if isinstance(out, tuple) else out  # the VAE decodes to (alpha, beta)


def _check_decode_depends_only_on_z(model: LatentModel, x1, x2):
    """Holding z fixed while changing the encoder's input must not change the decoder's output."""
    model.eval()
    with torch.no_grad():
        z = model.encode(x1)
        first = _decoder_output_from_z(model, z)
        model.encode(x2)  # would overwrite any skip tensors cached by encode()
        again = _decoder_output_from_z(model, z)
        assert torch.equal(first, again), "decode(z) changed after encoding another input"
        # The same through forward(): the encoder's output replaced by the fixed z.
        handle = model.encoder.register_forward_hook(lambda m, i, o: _as_encoder_output(model, z))
        try:
            out1, out2 = _decoder_output(model, x1), _decoder_output(model, x2)
        finally:
            handle.remove()
        assert torch.equal(out1, out2), "forward() output depends on the input beyond z"
        assert torch.equal(out1, first)


def _decoder_output_from_z(model, z):
    out = model.decode(z)
    return out[0] if isinstance(out, tuple) else out


def _as_encoder_output(model, z):
    # The VAE's encoder emits (mean, log-variance) side by side; a zero log-variance is harmless.
    return torch.cat([z, torch.zeros_like(z)], 1) if isinstance(model, BetaVAE1d) else z


def _check_no_gradient_bypass(model: LatentModel, x):
    """With the encoder output cut from the graph, the output must have no gradient path to x."""
    model.eval()
    x = x.clone().requires_grad_(True)
    handle = model.encoder.register_forward_hook(lambda m, i, o: o.detach().requires_grad_(True))
    try:
        out = _decoder_output(model, x)
    finally:
        handle.remove()
    (grad,) = torch.autograd.grad(out.sum(), x, allow_unused=True)
    assert grad is None or not grad.any(), "gradient reaches the input without passing through z"


def _check_decoder_sees_only_z(model: LatentModel, x):
    """Hooks: the decoder is called with z alone, and no decoder layer gets an encoder tensor."""
    encoder_tensors: dict[int, str] = {}
    kept = []  # keeps every encoder output alive, so that no later tensor can reuse its id
    decoder_inputs: list[tuple[str, list[torch.Tensor]]] = []

    def record_encoder(name):
        def hook(module, args, output):
            outputs = output if isinstance(output, tuple) else (output,)
            kept.extend(outputs)
            for t in outputs:
                encoder_tensors[id(t)] = name

        return hook

    def record_decoder(name):
        def hook(module, args, kwargs):
            tensors = [a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)]
            decoder_inputs.append((name, tensors))

        return hook

    handles = [m.register_forward_hook(record_encoder(n)) for n, m in model.encoder.named_modules()]
    handles += [
        m.register_forward_pre_hook(record_decoder(n), with_kwargs=True)
        for n, m in model.decoder.named_modules()
    ]
    try:
        model.eval()
        with torch.no_grad():
            _decoder_output(model, x)
    finally:
        for handle in handles:
            handle.remove()
    top_name, top_inputs = decoder_inputs[0]
    assert top_name == "" and len(top_inputs) == 1, "the decoder takes exactly one tensor"
    z = top_inputs[0]
    assert z.shape == (x.shape[0], model.latent_dim)
    for name, tensors in decoder_inputs[1:]:
        for t in tensors:
            if t is not z:
                assert id(t) not in encoder_tensors, (
                    f"decoder layer {name!r} receives the output of encoder layer "
                    f"{encoder_tensors[id(t)]!r}: a bypass of the latent"
                )


def _all_bypass_checks(model, x1, x2):
    _check_decode_depends_only_on_z(model, x1, x2)
    _check_no_gradient_bypass(model, x1)
    _check_decoder_sees_only_z(model, x1)


@pytest.mark.parametrize(
    ("name", "shape", "config"),
    [
        ("res_ae", (1, 32, 32), {**SMALL, "depth": 3}),
        ("res_ae", (2, 24, 40), {**SMALL, "depth": 2, "blocks_per_scale": 2}),
        ("beta_vae_1d", (3, 200), {**SMALL, "depth": 3}),
        ("beta_vae_1d", (3, 200), {**SMALL, "depth": 3, "global_max": True}),
    ],
)
def test_latent_is_the_only_path(name, shape, config):
    model = build_model(name, config, shape, seed=0)
    g = torch.Generator().manual_seed(0)
    x1, x2 = torch.rand(2, *shape, generator=g), torch.rand(2, *shape, generator=g)
    _all_bypass_checks(model, x1, x2)


class _CachedSkipAE(ResidualAutoencoder):
    """A U-Net-style cheat: encode() keeps its first feature map, decode() feeds it to a layer."""

    def encode(self, x):
        self._skip = self.encoder.downs[0](torch.nan_to_num(x))  # (B, c0, H/2, W/2)
        return super().encode(x)

    def decode(self, z):
        return super().decode(z) + self.decoder.head[-1](self._skip)


class _SkipDecoder(torch.nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.mix = torch.nn.Conv2d(1, 1, 1)

    def forward(self, z, skip):
        return self.inner(z) + self.mix(skip)


class _ArgumentSkipAE(ResidualAutoencoder):
    """A cheat that hands an encoder feature map to the decoder as a second argument."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.decoder = _SkipDecoder(self.decoder)

    def forward(self, x):
        z = self.encoder(x)
        skip = self.encoder.downs[0](x).mean(1, keepdim=True)
        skip = torch.nn.functional.interpolate(skip, size=x.shape[-2:])
        return self.decoder(z, skip), z


@pytest.mark.parametrize("cheat", [_CachedSkipAE, _ArgumentSkipAE])
def test_bypass_checks_catch_a_bypass(cheat):
    model = cheat(1, 16, 16, **SMALL, depth=2)
    x1, x2 = torch.rand(2, 1, 16, 16), torch.rand(2, 1, 16, 16)
    if cheat is _CachedSkipAE:  # _ArgumentSkipAE cannot decode from z alone at all
        with pytest.raises(AssertionError, match="decode"):
            _check_decode_depends_only_on_z(model, x1, x2)
    with pytest.raises(AssertionError, match="gradient reaches the input"):
        _check_no_gradient_bypass(model, x1)
    with pytest.raises(
        AssertionError, match="one tensor" if cheat is _ArgumentSkipAE else "bypass"
    ):
        _check_decoder_sees_only_z(model, x1)


# --------------------------------------------------------------------------------------------
# Gradients and losses


def test_gradients_reach_every_parameter():
    model = build_model("res_ae", {**SMALL, "depth": 3}, (1, 32, 32), seed=0)
    x = torch.rand(4, 1, 32, 32)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    # Zero-initialised residual branches pass no gradient to their first conv on the very first
    # step, so check after one update.
    for _ in range(2):
        optimizer.zero_grad()
        loss, metrics = model.loss(x)
        loss.backward()
        optimizer.step()
    assert math.isfinite(metrics["mse"])
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, f"no gradient reaches {name}"


def test_masked_mse_ignores_masked_values():
    g = torch.Generator().manual_seed(1)
    prediction, target = torch.randn(2, 1, 8, 8, generator=g), torch.randn(2, 1, 8, 8, generator=g)
    mask = torch.rand(2, 1, 8, 8, generator=g) > 0.3
    reference = masked_mse(prediction, target, mask)
    expected = ((prediction - target)[mask] ** 2).mean()
    assert torch.allclose(reference, expected)
    changed_p, changed_t = prediction.clone(), target.clone()
    changed_p[~mask] = 1e6
    changed_t[~mask] = torch.nan
    assert torch.equal(masked_mse(changed_p, changed_t, mask), reference)
    changed_p[mask.nonzero()[0].unbind()] += 1.0  # a valid pixel does count
    assert not torch.equal(masked_mse(changed_p, changed_t, mask), reference)
    assert masked_mse(prediction, target, torch.zeros_like(mask)) == 0


def test_res_ae_loss_ignores_pixels_outside_the_field_of_view():
    model = build_model("res_ae", {**SMALL, "depth": 2}, (1, 16, 16), seed=0).eval()
    g = torch.Generator().manual_seed(2)
    x = torch.rand(3, 1, 16, 16, generator=g)
    yy, xx = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
    outside = (yy - 7.5) ** 2 + (xx - 7.5) ** 2 > 8.0**2
    x[:, :, outside] = torch.nan
    with torch.no_grad():
        loss, metrics = model.loss(x)
        assert math.isfinite(loss.item()) and metrics["mse"] == loss.item()
        # Same loss whatever non-finite marker is used outside the field of view...
        other = x.clone()
        other[:, :, outside] = torch.inf
        assert torch.equal(model.loss(other)[0], loss)
        # ... and it is the MSE over the valid pixels, with NaN fed to the network as 0.
        x_hat = model.decode(model.encode(torch.nan_to_num(x)))
        valid = torch.isfinite(x)
        assert torch.allclose(loss, ((x_hat - x)[valid] ** 2).mean())
        # The reconstruction keeps NaN outside the field of view.
        rec = model.reconstruct(x)
        assert torch.equal(torch.isnan(rec), torch.isnan(x))


# --------------------------------------------------------------------------------------------
# The Beta VAE


def test_beta_vae_shapes_and_positive_parameters():
    model = build_model("beta_vae_1d", {**SMALL, "depth": 3}, (3, 250), seed=0)
    x = torch.rand(4, 3, 250)
    (alpha, beta), z = model(x)
    assert alpha.shape == beta.shape == x.shape and z.shape == (4, 6)
    assert (alpha > 0).all() and (beta > 0).all()
    mean = model.reconstruct(x)
    assert mean.shape == x.shape and ((mean > 0) & (mean < 1)).all()


@pytest.mark.parametrize("precision", ["sample", "window"])
def test_beta_vae_loss_terms_match_torch_distributions(precision):
    x = torch.rand(2, 3, 10).clamp(0.01, 0.99)
    alpha, beta = torch.rand(2, 3, 10) * 3 + 0.1, torch.rand(2, 3, 10) * 3 + 0.1
    expected = torch.distributions.Beta(alpha, beta).log_prob(x)
    assert torch.allclose(BetaVAE1d.beta_log_likelihood(x, alpha, beta), expected, atol=1e-5)

    params = {**SMALL, "depth": 2, "kl_weight": 0.5, "precision": precision}
    model = build_model("beta_vae_1d", params, (3, 40), seed=0)
    data = torch.rand(2, 3, 40)
    data[0, 1, 5] = torch.nan  # a missing sample is left out of the likelihood
    model.initialise_output(model._clean(data)[0])  # as the first training batch does
    model.eval()  # the posterior mean instead of a sample: a deterministic loss
    with torch.no_grad():
        loss, metrics = model.loss(data)
        mu, logvar = model.posterior(data)
        a, b = model.decode(mu)
        clean = torch.nan_to_num(data, nan=0.5).clamp(1e-6, 1 - 1e-5)
        loglik = torch.distributions.Beta(a, b).log_prob(clean)
        loglik[0, 1, 5] = 0.0
        posterior = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
        prior = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
        kl = torch.distributions.kl_divergence(posterior, prior).sum(1)
    assert torch.allclose(loss, -(loglik.flatten(1).sum(1) - 0.5 * kl).mean(), rtol=1e-4)
    assert metrics["kl"] == pytest.approx(kl.mean().item(), rel=1e-4)


def test_beta_vae_window_precision_is_one_per_window_and_band():
    models = {
        p: build_model("beta_vae_1d", {**SMALL, "depth": 3, "precision": p}, (3, 64), seed=0)
        for p in ("sample", "window")
    }
    with torch.no_grad():
        z = torch.randn(4, SMALL["latent_dim"])
        (a_s, b_s), (a_w, b_w) = (models[p].decode(z) for p in ("sample", "window"))
    # Same seed, same weights: the means agree; the window's precision is the exponential of the
    # mean over its samples of the per-sample log-precision (less the eps each parameter gets).
    eps = models["window"].eps
    mean_s, mean_w = ((a - eps) / (a + b - 2 * eps) for a, b in ((a_s, b_s), (a_w, b_w)))
    assert torch.allclose(mean_s, mean_w, atol=1e-5)
    precision = a_w + b_w - 2 * eps
    assert torch.allclose(precision, precision[..., :1].expand_as(precision), rtol=1e-5)
    per_sample = (a_s + b_s - 2 * eps).log()
    assert not torch.allclose(per_sample, per_sample[..., :1].expand_as(per_sample))
    assert torch.allclose(precision[..., 0].log(), per_sample.mean(dim=2), atol=1e-4)
    with pytest.raises(ValueError, match="precision"):
        build_model("beta_vae_1d", {**SMALL, "precision": "band"}, (3, 64))


def test_a_beta_vae_saved_before_the_precision_option_is_rebuilt_per_sample():
    model = build_model("beta_vae_1d", {**SMALL, "depth": 2, "precision": "window"}, (3, 40))
    config = model.model_config
    assert config["params"]["precision"] == "window"
    del config["params"]["precision"]  # what older checkpoints hold
    assert model_from_config(config).precision == "sample"


@pytest.mark.parametrize(("global_max", "length"), [(False, 64), (True, 64), (True, 58)])
def test_encoder_reads_each_scales_average_and_optionally_its_maximum(global_max, length):
    config = {**SMALL, "depth": 3, "global_max": global_max}
    model = build_model("beta_vae_1d", config, (3, length))
    encoder = model.encoder
    stage_outputs, latent_inputs = [], []
    hooks = [
        s.register_forward_hook(lambda m, i, o: stage_outputs.append(o)) for s in encoder.stages
    ]
    hooks.append(
        encoder.to_latent.register_forward_hook(lambda m, i, o: latent_inputs.append(i[0]))
    )
    x = torch.rand(2, 3, length)
    x[1, :, 50] = 0.99  # a one-sample flash late in the second window
    try:
        with torch.no_grad():
            encoder(x)
    finally:
        for hook in hooks:
            hook.remove()
    # 58 samples are zero-padded by 3 on each side to 64; at scale s (a cell per 2**(s+1)
    # samples) the maximum covers only cells that hold some of the 58.
    before = (64 - length) // 2
    expected = []
    for s, h in enumerate(stage_outputs):
        expected.append(h.mean(dim=2))
        if global_max:
            cell = 2 ** (s + 1)
            first, last = before // cell, (before + length - 1) // cell
            expected.append(h[:, :, first : last + 1].max(dim=2).values)
    n_summary = sum(e.shape[1] for e in expected)
    assert latent_inputs[0].shape[1] == encoder.to_latent.in_features
    assert torch.equal(latent_inputs[0][:, -n_summary:], torch.cat(expected, dim=1))


def test_the_maximum_leaves_out_cells_of_padding_only():
    # 40 samples padded by 4 on each side to 48 (depth 4): at the finest scale (2 samples a cell)
    # cells 0, 1, 22 and 23 hold padding only. Make them the largest responses there.
    model = build_model("beta_vae_1d", {**SMALL, "depth": 4, "global_max": True}, (3, 40))
    encoder = model.encoder
    padding_only = [0, 1, 22, 23]

    def inflate(module, inputs, output):
        output = output.clone()
        output[:, :, padding_only] = 1e6
        return output

    latent_inputs = []
    hooks = [encoder.stages[0].register_forward_hook(inflate)]
    hooks.append(
        encoder.to_latent.register_forward_hook(lambda m, i, o: latent_inputs.append(i[0]))
    )
    try:
        with torch.no_grad():
            encoder(torch.rand(2, 3, 40))
    finally:
        for hook in hooks:
            hook.remove()
    n_coarse = encoder.to_latent.in_features - 2 * sum(
        s[0].conv1.in_channels for s in encoder.stages
    )
    c0 = encoder.stages[0][0].conv1.in_channels
    finest_max = latent_inputs[0][:, n_coarse + c0 : n_coarse + 2 * c0]  # after the finest mean
    assert (finest_max < 1e5).all()
    assert (latent_inputs[0][:, n_coarse : n_coarse + c0] > 1e4).all()  # the mean does see them


def test_a_beta_vae_saved_before_the_global_max_option_is_rebuilt_without_it():
    model = build_model("beta_vae_1d", {**SMALL, "depth": 2, "global_max": True}, (3, 40))
    config = model.model_config
    assert config["params"]["global_max"] is True
    del config["params"]["global_max"]  # what older checkpoints hold
    old = model_from_config(config)
    assert not old.encoder.global_max
    with pytest.raises(RuntimeError, match="size mismatch"):
        old.load_state_dict(model.state_dict())


# --------------------------------------------------------------------------------------------
# The registry


def test_registry_builds_and_rebuilds():
    assert set(MODELS) >= {"res_ae", "beta_vae_1d"}
    model = build_model("res_ae", {**SMALL, "depth": 2}, (1, 16, 24), seed=3)
    assert isinstance(model, ResidualAutoencoder)
    assert isinstance(build_model("res_ae", SMALL, (1, 16, 16)), ResidualAutoencoder)
    assert isinstance(build_model("beta_vae_1d", SMALL, (3, 64)), BetaVAE1d)
    config = model.model_config
    assert config == {
        "name": "res_ae",
        "sample_shape": [1, 16, 24],
        "params": {"base_channels": 4, "depth": 2, "latent_dim": 6, "blocks_per_scale": 1},
    }
    rebuilt = model_from_config(config)
    rebuilt.load_state_dict(model.state_dict())  # same architecture, strict
    x = torch.rand(2, 1, 16, 24)
    assert torch.equal(rebuilt.eval()(x)[0], model.eval()(x)[0])


def test_seeded_build_is_reproducible_and_leaves_the_global_rng_alone():
    torch.manual_seed(123)
    state = torch.get_rng_state()
    a = build_model("res_ae", SMALL, (1, 16, 16), seed=7).state_dict()
    b = build_model("res_ae", SMALL, (1, 16, 16), seed=7).state_dict()
    c = build_model("res_ae", SMALL, (1, 16, 16), seed=8).state_dict()
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_registry_rejects_bad_requests():
    with pytest.raises(ValueError, match="unknown model .radar."):
        build_model("radar", {}, (1, 16, 16))
    with pytest.raises(ValueError, match="latent_size"):
        build_model("res_ae", {"latent_size": 8}, (1, 16, 16))
    with pytest.raises(ValueError, match="expects samples shaped"):
        build_model("res_ae", {}, (16, 16))
