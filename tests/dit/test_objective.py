from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from soundstage.conditioners import ConditionBatch
from soundstage.dit import SpatialDiT, dit_preset, flow_matching_loss


def setup() -> tuple[SpatialDiT, torch.Tensor, ConditionBatch]:
    torch.manual_seed(0)
    model = SpatialDiT(dit_preset("tiny"))
    x0 = torch.randn(4, 16, 12)
    batch = ConditionBatch.from_records([{"azimuth_deg": a, "seconds": 0.25} for a in (0.0, 90.0, -90.0, 180.0)])
    return model, x0, batch


def test_loss_at_init_is_the_target_energy() -> None:
    model, x0, batch = setup()
    loss, logs = flow_matching_loss(model, x0, model.conditioners(batch), None, torch.Generator().manual_seed(3))
    noise = torch.randn(x0.shape, generator=_after_t(torch.Generator().manual_seed(3), 4))
    torch.testing.assert_close(loss, (noise - x0).pow(2).mean())  # zero output at init
    assert set(logs) == {"loss", "loss_t_low", "loss_t_high"} and logs["loss"] == loss.item()


def _after_t(generator: torch.Generator, batch: int) -> torch.Generator:
    torch.randn(batch, generator=generator)  # the loss draws t first
    return generator


def test_padded_frames_do_not_count() -> None:
    model, x0, batch = setup()
    with torch.no_grad():
        model.proj_out.weight.normal_()  # a model whose output is not zero
    cond = model.conditioners(batch)
    mask = torch.ones(4, 12, dtype=torch.bool)
    mask[1:, 7:] = False
    garbage = x0.clone()
    garbage[1:, :, 7:] = 1e3
    a, _ = flow_matching_loss(model, x0, cond, mask, torch.Generator().manual_seed(1))
    b, _ = flow_matching_loss(model, garbage, cond, mask, torch.Generator().manual_seed(1))
    torch.testing.assert_close(a, b)


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Tiny tensors: threads only add contention on a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.usefixtures("one_thread")
def test_overfitting_one_batch_lowers_the_loss() -> None:
    model, x0, batch = setup()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    mask = torch.ones(4, 12, dtype=torch.bool)
    mask[2:, 9:] = False

    def evaluate() -> float:
        with torch.no_grad():
            return flow_matching_loss(model, x0, model.conditioners(batch), mask, torch.Generator().manual_seed(0))[0].item()

    before = evaluate()
    for _ in range(50):  # one batch, one draw of t and noise: a regression the model must fit
        loss, _ = flow_matching_loss(model, x0, model.conditioners(batch), mask, torch.Generator().manual_seed(0))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = evaluate()
    assert after < 0.2 * before, (before, after)
