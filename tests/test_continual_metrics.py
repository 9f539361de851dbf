"""ACC / BWT / FWT on a hand-computed accuracy matrix."""

from __future__ import annotations

import pytest

from suite.metrics import continual as cm

# rows: random init, after task 1, 2, 3; columns: tasks 1..3
R = [
    [0.10, 0.12, 0.08],
    [0.90, 0.20, 0.10],
    [0.70, 0.80, 0.30],
    [0.50, 0.60, 0.95],
]


def test_acc_bwt_fwt_by_hand() -> None:
    # ACC = (0.50 + 0.60 + 0.95) / 3
    assert cm.average_accuracy(R) == pytest.approx(2.05 / 3)
    # BWT = ((0.50 - 0.90) + (0.60 - 0.80)) / 2 = (-0.40 - 0.20) / 2
    assert cm.backward_transfer(R) == pytest.approx(-0.30)
    # FWT = ((R[1,2] - R[0,2]) + (R[2,3] - R[0,3])) / 2 = ((0.20 - 0.12) + (0.30 - 0.08)) / 2
    assert cm.forward_transfer(R) == pytest.approx(0.15)
    # plasticity: (0.90 + 0.80 + 0.95) / 3
    assert cm.newest_task_accuracy(R) == pytest.approx(2.65 / 3)
    # Chaudhry forgetting: task 1 best 0.90 -> 0.50, task 2 best 0.80 -> 0.60
    assert cm.max_forgetting(R) == pytest.approx(0.30)


def test_curves_by_hand() -> None:
    assert cm.seen_task_accuracy(R) == pytest.approx([0.90, 0.75, 2.05 / 3])
    curves = cm.forgetting_curves(R)
    assert curves[0] == pytest.approx([0.90, 0.70, 0.50])
    assert curves[2] == pytest.approx([0.95])


def test_no_forgetting_gives_zero_bwt_and_positive_transfer() -> None:
    r = [[0.1, 0.1], [0.9, 0.5], [0.9, 0.9]]
    assert cm.backward_transfer(r) == 0.0
    assert cm.forward_transfer(r) == pytest.approx(0.4)


def test_shape_is_checked() -> None:
    with pytest.raises(ValueError, match="T \\+ 1, T"):
        cm.average_accuracy([[0.9, 0.1], [0.5, 0.5]])
