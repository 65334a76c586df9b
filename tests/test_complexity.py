"""Parameter counts, FLOPs (multiply-accumulates) and latency of dense, masked and pruned models."""

import copy
import time

import pytest
import torch
from torch import nn

from prunelib import pruning as P
from prunelib.complexity import count_flops, count_parameters, measure_latency
from prunelib.models import MLP, PosterCNN


def test_count_parameters_dense_and_masked():
    torch.manual_seed(0)
    m = MLP(2, (16, 16), 2)
    total = (2 * 16 + 16) + (16 * 16 + 16) + (16 * 2 + 2)
    assert count_parameters(m) == {"total": total, "unmasked": total, "effective": total}
    masks = P.magnitude_masks(m, 0.5)
    n_masked = sum(int((v == 0).sum()) for v in masks.values())
    c = count_parameters(m, masks)
    assert c["total"] == total and c["unmasked"] == total - n_masked == c["effective"]
    with torch.no_grad():
        m[4].bias.zero_()          # exact zeros are not effective
    assert count_parameters(m, masks)["effective"] == total - n_masked - 2
    with pytest.raises(ValueError, match="unknown parameter"):
        count_parameters(m, {"x.weight": torch.ones(1)})


def test_poster_cnn_counts():
    m = PosterCNN()
    assert count_parameters(m)["total"] == 62006
    macs = (6 * 3 * 25 * 28 * 28) + (16 * 6 * 25 * 10 * 10) + (400 * 120 + 120 * 84 + 84 * 10)
    assert count_flops(m, (1, 3, 32, 32)) == macs
    assert count_flops(m, (4, 3, 32, 32)) == 4 * macs


def test_flops_of_linear_and_masks():
    m = MLP(2, (16, 16), 2)
    assert count_flops(m, (5, 2)) == 5 * (2 * 16 + 16 * 16 + 16 * 2)
    masks = P.magnitude_masks(m, 0.5)
    alive = sum(int(v.sum()) for v in masks.values())
    assert count_flops(m, (5, 2), masks) == 5 * alive
    with pytest.raises(ValueError, match="shape"):
        count_flops(m, (1, 2), {"0.weight": torch.ones(3)})


@pytest.mark.parametrize("make, shape", [(lambda: MLP(2, (20, 12), 2), (1, 2)),
                                         (PosterCNN, (1, 3, 32, 32))])
def test_physically_pruned_counts_equal_unit_masked_counts(make, shape):
    torch.manual_seed(0)
    m = make()
    res = P.prune_structured(m, 0.6)
    masks = P.unit_masks(m, res.kept)
    assert count_parameters(res.model)["total"] == count_parameters(m, masks)["unmasked"]
    assert count_flops(res.model, shape) == count_flops(m, shape, masks)
    assert count_flops(res.model, shape) < count_flops(m, shape)


def test_flops_restores_training_mode():
    m = MLP(2, (4,), 2).train()
    count_flops(m, (1, 2))
    assert m.training


class _Sleepy(nn.Module):
    def __init__(self, seconds):
        super().__init__()
        self.seconds = seconds
        self.lin = nn.Linear(2, 2)

    def forward(self, x):
        time.sleep(self.seconds)
        return self.lin(x)


def test_measure_latency_median_of_perf_counter():
    m = _Sleepy(0.003).train()
    t = measure_latency(m, torch.randn(1, 2), repeats=5, warmup=1)
    assert 0.003 <= t < 0.5
    assert m.training
    with pytest.raises(ValueError, match="repeats"):
        measure_latency(m, torch.randn(1, 2), repeats=0)


def test_measure_latency_uses_the_given_model():
    small, big = MLP(64, (8,), 2), MLP(64, (2048, 2048), 2)
    x = torch.randn(64, 64)
    assert measure_latency(copy.deepcopy(small), x, repeats=5, warmup=1) < measure_latency(
        big, x, repeats=5, warmup=1)
