"""Samplers against the exact rectified flow of Gaussian data, and guidance against its formula."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from soundstage.dit.sampling import (
    concat_conditioning,
    flow_timesteps,
    guided_velocity,
    sample_euler,
    sample_heun,
)

MU, S = 1.5, 0.3  # data x0 ~ N(MU, S^2 I)


def gaussian_velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Exact velocity E[noise - x0 | x_t] for x0 ~ N(MU, S^2): (x - E[x0 | x_t]) / t."""
    t = t[:, None, None].double()
    x = x.double()
    var = (1 - t) ** 2 * S**2 + t**2
    x0_mean = MU + (1 - t) * S**2 / var * (x - (1 - t) * MU)
    return ((x - x0_mean) / t).float()


def exact_endpoint(noise: torch.Tensor) -> torch.Tensor:
    """The flow of Gaussian data is affine in t: x_t = (1 - t) MU + sqrt((1 - t)^2 S^2 + t^2) noise, so x_0 = MU + S noise."""
    return MU + S * noise


def test_flow_timesteps() -> None:
    t = flow_timesteps(4)
    assert torch.allclose(t, torch.tensor([1.0, 0.75, 0.5, 0.25, 0.0]))
    shifted = flow_timesteps(2, shift=3.0)
    assert shifted[0] == 1 and shifted[-1] == 0 and shifted[1] == pytest.approx(0.75)  # 3 * 0.5 / (1 + 2 * 0.5)
    assert (flow_timesteps(10, shift=3.0)[1:-1] > flow_timesteps(10)[1:-1]).all()
    with pytest.raises(ValueError, match="steps"):
        flow_timesteps(0)


def test_euler_lands_on_the_data_distribution() -> None:
    noise = torch.randn(4096, 2, 8, generator=torch.Generator().manual_seed(0))
    x0 = sample_euler(gaussian_velocity, noise, flow_timesteps(200))
    assert x0.mean().item() == pytest.approx(MU, abs=0.01)
    assert x0.std().item() == pytest.approx(S, abs=0.01)
    assert (x0 - exact_endpoint(noise)).abs().max() < 0.02  # first order: the error shrinks as 1 / steps


def test_heun_is_more_accurate_than_euler_and_second_order() -> None:
    noise = torch.randn(64, 2, 8, generator=torch.Generator().manual_seed(1))
    target = exact_endpoint(noise)

    def error(sampler, steps: int) -> float:
        return (sampler(gaussian_velocity, noise, flow_timesteps(steps)) - target).abs().max().item()

    assert error(sample_heun, 10) < error(sample_euler, 10) / 3
    assert error(sample_euler, 20) / error(sample_euler, 40) == pytest.approx(2, rel=0.15)  # first order
    assert error(sample_heun, 20) / error(sample_heun, 40) > 3.5  # second order: ~4


def test_heun_never_evaluates_at_zero_and_calls_back_once_per_step() -> None:
    seen: list[float] = []
    steps: list[int] = []

    def velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        seen.append(float(t[0]))
        return gaussian_velocity(x, t)

    sample_heun(velocity, torch.randn(2, 1, 3), flow_timesteps(5), callback=lambda i, x: steps.append(i))
    assert min(seen) > 0 and len(seen) == 2 * 5 - 1
    assert steps == [1, 2, 3, 4, 5]


@dataclass
class Cond:
    tokens: torch.Tensor
    mask: torch.Tensor
    global_vector: torch.Tensor


class ToyDiT:
    """A velocity that depends on x, t and on the conditioning (its masked mean token and global vector)."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def __call__(self, x: torch.Tensor, t: torch.Tensor, cond: Cond, frame_mask: torch.Tensor | None) -> torch.Tensor:
        self.calls.append(x.shape[0])
        m = cond.mask.float().unsqueeze(-1)
        token = (cond.tokens * m).sum(1) / m.sum(1).clamp_min(1)  # padding must not change it
        bias = (token + cond.global_vector).sum(-1)
        return x * t[:, None, None] + bias[:, None, None]


def conds(batch: int = 2) -> tuple[Cond, Cond]:
    g = torch.Generator().manual_seed(0)
    c = Cond(torch.randn(batch, 5, 3, generator=g), torch.ones(batch, 5, dtype=torch.bool), torch.randn(batch, 3, generator=g))
    u = Cond(torch.randn(batch, 2, 3, generator=g), torch.ones(batch, 2, dtype=torch.bool), torch.randn(batch, 3, generator=g))
    return c, u


def test_concat_conditioning_pads_the_shorter_tokens_masked() -> None:
    c, u = conds()
    both = concat_conditioning(c, u)
    assert both.tokens.shape == (4, 5, 3) and both.mask[2:, 2:].sum() == 0 and both.mask[:2].all()


@pytest.mark.parametrize("scale", [0.0, 1.0, 2.5])
def test_guidance_formula_in_one_batched_forward(scale: float) -> None:
    dit, (c, u) = ToyDiT(), conds()
    x, t = torch.randn(2, 4, 6), torch.tensor([0.5, 0.5])
    v = guided_velocity(dit, c, u, scale)(x, t)
    v_c, v_u = dit(x, t, c, None), dit(x, t, u, None)
    assert torch.allclose(v, v_u + scale * (v_c - v_u), atol=1e-5)
    assert dit.calls[0] == (2 if scale == 1 else 4)  # scale 1 needs the conditional branch only


def test_guidance_interval_gives_the_conditional_velocity_outside() -> None:
    dit, (c, u) = ToyDiT(), conds()
    x = torch.randn(2, 4, 6)
    fn = guided_velocity(dit, c, u, 3.0, interval=(0.2, 0.8))
    for t_value, guided in ((0.9, False), (0.5, True), (0.1, False)):
        t = torch.full((2,), t_value)
        v_c, v_u = dit(x, t, c, None), dit(x, t, u, None)
        expected = v_u + 3.0 * (v_c - v_u) if guided else v_c
        assert torch.allclose(fn(x, t), expected, atol=1e-5), t_value


def test_transform_acts_on_the_predicted_clean_latent() -> None:
    dit, (c, u) = ToyDiT(), conds()
    x, t = torch.randn(2, 4, 6), torch.full((2,), 0.4)
    plain = guided_velocity(dit, c, u, 2.0)(x, t)
    fn = guided_velocity(dit, c, u, 2.0, transform=lambda x0, tt: x0 + 1.0)
    v = fn(x, t)
    assert torch.allclose(x - 0.4 * v, (x - 0.4 * plain) + 1.0, atol=1e-5)  # x0_hat' = transform(x0_hat)
    identity = guided_velocity(dit, c, u, 2.0, transform=lambda x0, tt: x0)
    assert torch.allclose(identity(x, t), plain, atol=1e-5)


def test_negative_scale_refused() -> None:
    c, u = conds()
    with pytest.raises(ValueError, match="cfg_scale"):
        guided_velocity(ToyDiT(), c, u, -1.0)
