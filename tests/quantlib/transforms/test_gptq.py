"""GPTQ against a plain per-column reference (no lazy batching) and against RTN."""

from __future__ import annotations

import threading

import pytest
import torch

from quantlib.transforms.control import TransformCancelled
from quantlib.transforms.gptq import gptq_hessian, gptq_quantize, inverse_hessian_factor
from quantlib.transforms.weight_quant import WeightFormat, WeightQuantizer
from tests.quantlib.transforms.data import make_layer, output_mse


def different_codes(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Where ``a`` and ``b`` lie on different grid points. Lazy and immediate updates round
    differently in the last float bit, and so do scales computed from them, so equal codes are
    compared with a relative tolerance far below one grid step."""
    return ~torch.isclose(a, b, rtol=1e-4, atol=1e-7)


def assert_same_codes_up_to_ties(ours, ref, pre, order, max_rows=0.25):
    """Every row agrees with the reference, or first differs where the reference's value
    before rounding (``pre``) was a tie: equally far from both results. From there on (in
    the visiting ``order`` of the columns) the error feedback legitimately differs, so the
    rest of that row is not compared."""
    ours, ref, pre = ours[:, order], ref[:, order], pre[:, order]
    diff = different_codes(ours, ref)
    rows = diff.any(dim=1).nonzero().flatten().tolist()
    for r in rows:
        c = int(diff[r].nonzero()[0])
        to_ours, to_ref = abs(pre[r, c] - ours[r, c]), abs(pre[r, c] - ref[r, c])
        step = abs(ours[r, c] - ref[r, c])
        assert abs(to_ours - to_ref) <= 1e-3 * step, (
            f"row {r} column {c}: not a tie (value {pre[r, c]:.6g}, ours {ours[r, c]:.6g}, "
            f"reference {ref[r, c]:.6g})")
    assert len(rows) <= max_rows * ours.shape[0], f"{len(rows)} rows diverge"


def reference_gptq(weight, calib_x, fmt, damp=0.01, act_order=False):
    """Frantar et al.'s algorithm written plainly: every update applied at once to all the
    remaining columns; a group's scale fixed at the first visit of one of its columns.
    Returns (dequantized weight, the values each column had just before rounding, the order
    in which the columns were visited)."""
    w = weight.float().clone()
    n = w.shape[1]
    quantizer = WeightQuantizer(fmt, w)
    group = quantizer.group
    h = 2.0 * calib_x.T.float() @ calib_x.float() / calib_x.shape[0]
    dead = torch.diagonal(h) == 0
    h[dead, dead] = 1.0
    w[:, dead] = 0.0
    perm = (torch.argsort(torch.diagonal(h), descending=True, stable=True) if act_order
            else torch.arange(n))
    w, h = w[:, perm], h[perm][:, perm]
    h = h + damp * torch.diagonal(h).mean() * torch.eye(n)
    u = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(h)), upper=True)
    params = {}
    if fmt.granularity != "block":
        params[0] = quantizer.group_params(weight.float())
    q = torch.zeros_like(w)
    pre = torch.zeros_like(w)
    for j in range(n):
        g = int(perm[j]) // group
        if g not in params:
            members = [p for p in range(n) if int(perm[p]) // group == g]
            order = torch.argsort(perm[members])
            params[g] = quantizer.group_params(w[:, members][:, order])
        pre[:, j] = w[:, j]
        q[:, j:j + 1] = quantizer.quantize(w[:, j:j + 1], params[g])
        err = (w[:, j] - q[:, j]) / u[j, j]
        w[:, j:] -= torch.outer(err, u[j, j:])
    out, before = torch.empty_like(q), torch.empty_like(pre)
    out[:, perm], before[:, perm] = q, pre
    return out, before, perm


FORMATS = [
    pytest.param(WeightFormat("int4", "channel"), id="int4-channel"),
    pytest.param(WeightFormat("uint4", "channel", symmetric=False), id="uint4-channel-affine"),
    pytest.param(WeightFormat("int4", "block", 32), id="int4-g32"),
    pytest.param(WeightFormat("int4", "block", 64, symmetric=False), id="int4-g64-affine"),
    pytest.param(WeightFormat("int4", "block", 128), id="int4-g128"),
    pytest.param(WeightFormat("int8", "tensor"), id="int8-tensor"),
    pytest.param(WeightFormat("mxfp4", "block"), id="mxfp4"),
    pytest.param(WeightFormat("nvfp4", "block"), id="nvfp4"),
    pytest.param(WeightFormat("fp8_e4m3", "channel"), id="fp8-channel"),
]


@pytest.mark.parametrize("act_order", [False, True], ids=["in-order", "act-order"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_gptq_matches_the_plain_reference_up_to_ties(fmt, act_order):
    weight, _, calib, _ = make_layer(64, 256, 512, seed=1)
    block = 48  # not a multiple of any group size: groups straddle lazy-update blocks
    ours = gptq_quantize(weight, calib, fmt, block=block, act_order=act_order)
    ref, pre, order = reference_gptq(weight, calib, fmt, act_order=act_order)
    assert_same_codes_up_to_ties(ours, ref, pre, order)


@pytest.mark.parametrize("act_order", [False, True], ids=["in-order", "act-order"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_gptq_beats_round_to_nearest_on_held_out_data(fmt, act_order):
    weight, _, calib, held_out = make_layer(128, 256, 1024, seed=2)
    gptq = gptq_quantize(weight, calib, fmt, act_order=act_order)
    rtn = WeightQuantizer(fmt, weight).quantize_all(weight)
    assert output_mse(held_out, weight, gptq) < output_mse(held_out, weight, rtn)


def test_block_size_is_only_a_speed_knob():
    weight, _, calib, _ = make_layer(32, 128, 256, seed=3)
    fmt = WeightFormat("int4", "block", 32)
    ref, pre, order = reference_gptq(weight, calib, fmt)
    for block in (1, 16, 128, 4096):
        ours = gptq_quantize(weight, calib, fmt, block=block)
        assert_same_codes_up_to_ties(ours, ref, pre, order)


def test_results_are_valid_grid_values_of_the_format():
    weight, _, calib, _ = make_layer(32, 128, 256, seed=4)
    fmt = WeightFormat("int4", "channel")
    q = gptq_quantize(weight, calib, fmt)
    scale = WeightQuantizer(fmt, weight).group_params(weight)[0]
    codes = (q / scale).round()
    assert torch.allclose(q, codes * scale, rtol=1e-6, atol=0)
    assert codes.min() >= -8 and codes.max() <= 7


def test_dead_inputs_quantize_to_zero_and_do_not_break_cholesky():
    weight, _, calib, _ = make_layer(32, 64, 256, seed=5, outliers=False)
    calib[:, [3, 10]] = 0.0
    q = gptq_quantize(weight, calib, WeightFormat("int4", "block", 32))
    assert torch.isfinite(q).all()
    assert (q[:, [3, 10]] == 0).all()


def test_inverse_hessian_factor_is_upper_and_inverts_the_damped_hessian():
    _, _, calib, _ = make_layer(8, 64, 256, seed=6)
    h = gptq_hessian(calib).double()
    u = inverse_hessian_factor(h, 0.01)
    damped = h + 0.01 * torch.diagonal(h).mean() * torch.eye(64, dtype=h.dtype)
    assert torch.equal(u, torch.triu(u))
    assert torch.allclose(u.T @ u @ damped, torch.eye(64, dtype=h.dtype), atol=1e-8)


def test_progress_rises_to_exactly_one():
    weight, _, calib, _ = make_layer(16, 256, 256, seed=7)
    seen = []
    gptq_quantize(weight, calib, WeightFormat("int4", "channel"), block=32,
                  progress=seen.append)
    assert seen[-1] == 1.0 and len(seen) >= 8
    assert all(a <= b for a, b in zip(seen, seen[1:]))


@pytest.mark.parametrize("kind", ["event", "callable"])
def test_cancellation_raises_with_how_far_it_got(kind):
    weight, _, calib, _ = make_layer(16, 256, 256, seed=8)
    event = threading.Event()
    calls = []

    def progress(fraction):
        calls.append(fraction)
        if fraction >= 0.5:
            event.set()

    cancel = event if kind == "event" else event.is_set
    with pytest.raises(TransformCancelled, match="GPTQ cancelled at 50% done") as info:
        gptq_quantize(weight, calib, WeightFormat("int4", "channel"), block=32,
                      progress=progress, cancel=cancel)
    assert info.value.fraction == 0.5 and max(calls) == 0.5


def test_bad_shapes_are_refused_clearly():
    weight, _, calib, _ = make_layer(16, 64, 32, seed=9)
    with pytest.raises(ValueError, match="hessian must be"):
        gptq_quantize(weight, None, WeightFormat("int8", "channel"), hessian=torch.eye(5))
    with pytest.raises(ValueError, match="block_size 48 must divide"):
        gptq_quantize(weight, calib, WeightFormat("int4", "block", 48))
