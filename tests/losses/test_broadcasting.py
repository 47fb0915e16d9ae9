"""The broadcasting helpers every loss shares: torch's rule, the field each refusal names, the
size cap, and gradients summed back as autograd sums them."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
import torch

from service.errors import InvalidInput
from service.losses.broadcasting import (
    broadcast_mismatch_warning,
    broadcast_shape,
    broadcast_shapes,
    require_broadcasts_into,
    stretched,
    sum_to_shape,
)

Shape = tuple[int, ...]

BROADCASTING: list[tuple[Shape, Shape]] = [
    ((2, 3), (2, 3)),
    ((2, 3), (3,)),
    ((3, 1), (4,)),
    ((), (5,)),
    ((2, 1, 3), (4, 1)),
    ((0,), (1,)),
]
NOT_BROADCASTING: list[tuple[Shape, Shape]] = [((2, 3), (2,)), ((3,), (4,)), ((2, 0), (3,))]


@pytest.mark.parametrize(("a", "b"), BROADCASTING + NOT_BROADCASTING)
def test_broadcast_shape_is_torchs(a: Shape, b: Shape) -> None:
    try:
        want: Shape | None = tuple((torch.empty(a) + torch.empty(b)).shape)
    except RuntimeError:
        want = None
    if want is None:
        with pytest.raises(InvalidInput) as info:
            broadcast_shape(("input", a), ("target", b))
        assert info.value.field == "target"
    else:
        assert broadcast_shape(("input", a), ("target", b)) == want


def _all_shapes(rank: int) -> list[Shape]:
    return [s for r in range(rank + 1) for s in itertools.product((0, 1, 2, 3), repeat=r)]


def test_broadcast_shapes_is_numpys_on_every_small_pair() -> None:
    """The plain-Python rule gives NumPy's shape, or NumPy's ValueError, for every pair of
    shapes of rank up to 3 and sizes 0 to 3 (and a tuple even when the two are equal)."""
    shapes = _all_shapes(3)
    assert len(shapes) == 85
    for a in shapes:
        for b in shapes:
            try:
                want: Shape | None = tuple(np.broadcast_shapes(a, b))
            except ValueError:
                want = None
            if want is None:
                with pytest.raises(ValueError, match="broadcast"):
                    broadcast_shapes(a, b)
            else:
                got = broadcast_shapes(a, b)
                assert type(got) is tuple
                assert got == want, (a, b)


@pytest.mark.parametrize(
    ("values", "shape"),
    [
        (np.arange(6.0).reshape(2, 3), (2, 3)),
        (np.arange(6.0).reshape(2, 3)[:, ::2], (2, 2)),  # not contiguous
        (np.arange(3.0), (2, 3)),
        (np.array([True, False]), (2,)),
        (np.float64(1.5), ()),  # a NumPy scalar becomes a 0-d array, as broadcast_to makes it
        (np.float64(1.5), (2,)),
        (np.array(2.0), ()),
    ],
)
def test_stretched_is_a_broadcast_copy(values: Any, shape: Shape) -> None:
    want = np.broadcast_to(values, shape).copy()
    got = stretched(values, shape)
    assert type(got) is np.ndarray
    assert (got.dtype, got.shape, got.flags.c_contiguous) == (want.dtype, want.shape, True)
    assert got.tobytes() == want.tobytes()
    assert not np.shares_memory(got, values)


def test_the_first_operand_that_fails_is_named() -> None:
    with pytest.raises(InvalidInput) as info:
        broadcast_shape(("a", (3, 1)), ("b", (1, 4)), ("c", (5,)), ("d", (7,)))
    assert info.value.field == "c"
    assert "'a' and 'b' of shape (3, 4)" in info.value.detail


def test_the_size_cap_names_the_operand_that_exceeds_it() -> None:
    assert broadcast_shape(("a", (100, 1)), ("b", (100,))) == (100, 100)
    assert broadcast_shape(("a", (100, 1)), ("b", (50,)), max_elements=5000) == (100, 50)
    with pytest.raises(InvalidInput) as info:
        broadcast_shape(("a", (100, 1)), ("b", (100,)), max_elements=5000)
    assert info.value.field == "b"
    assert "10000 elements" in info.value.detail


@pytest.mark.parametrize(
    ("shape", "ok"),
    [((2, 3), True), ((3,), True), ((2, 1), True), ((), True), ((1, 2, 3), False), ((2,), False)],
)
def test_broadcasting_into_the_input_may_not_enlarge_it(shape: Shape, ok: bool) -> None:
    if ok:
        require_broadcasts_into("weight", shape, (2, 3), "why")
    else:
        with pytest.raises(InvalidInput) as info:
            require_broadcasts_into("weight", shape, (2, 3), "why")
        assert info.value.field == "weight"


@pytest.mark.parametrize(("a", "b"), BROADCASTING)
def test_sum_to_shape_is_autograds(a: Shape, b: Shape) -> None:
    rng = np.random.default_rng(0)
    x = torch.tensor(rng.standard_normal(a), requires_grad=True)
    y = torch.tensor(rng.standard_normal(b), requires_grad=True)
    out = x * y
    g = rng.standard_normal(tuple(out.shape))
    gx, gy = torch.autograd.grad(out, [x, y], torch.tensor(g))
    y_b = np.broadcast_to(y.detach().numpy(), out.shape)
    x_b = np.broadcast_to(x.detach().numpy(), out.shape)
    np.testing.assert_allclose(sum_to_shape(g * y_b, a), gx.numpy())
    np.testing.assert_allclose(sum_to_shape(g * x_b, b), gy.numpy())


def test_the_mismatch_warning_tells_an_outer_broadcast_apart() -> None:
    rows = broadcast_mismatch_warning((3, 4), (4,))
    assert rows.data["broadcast_shape"] == [3, 4]
    assert "outer" not in rows.message
    outer = broadcast_mismatch_warning((4, 1), (4,))
    assert outer.data["broadcast_shape"] == [4, 4]
    assert "outer" in outer.message
