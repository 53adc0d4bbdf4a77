"""Is a hand-written GRU backward faster than autograd's on CPU? (issue 10, item 5: training speed)

    OMP_NUM_THREADS=1 .venv/bin/python bench/gru_backward.py --threads 1
    .venv/bin/python bench/gru_backward.py --threads 2

On two threads the CRN's four GRUs take about half of a training step, so a GRU layer with the same
parameters and maths as ``torch.nn.GRU`` (gate order r, z, n) but a hand-written backward pass was
tried: input projections and weight gradients as single matrix products outside the time loop, a
bidirectional layer's two directions batched in one loop (``bmm``), no autograd graph of T steps.
It matches ``nn.GRU``'s outputs and every gradient to about 3e-15 (float64, checked below), and it is
*slower* (docs/BENCHMARKS.md), so the trainer keeps ``nn.GRU``; the prototype lives here, not in the
package, as the record of what was measured.
"""
from __future__ import annotations

import argparse
import time

import torch
from torch import nn


class _FusedGRU(torch.autograd.Function):
    """Directions ``D`` stacked on a leading axis: ``x`` ``[D, T, B, I]`` (direction 1 already
    time-reversed), ``h0`` ``[D, B, H]``, ``w_ih`` ``[D, 3H, I]``, ``w_hh`` ``[D, 3H, H]``,
    biases ``[D, 3H]``. Returns every step's hidden state ``[D, T, B, H]``."""

    @staticmethod
    def forward(ctx, x, h0, w_ih, w_hh, b_ih, b_hh):
        d, t, b, _ = x.shape
        hid = w_hh.shape[2]
        gi = torch.baddbmm(b_ih[:, None], x.reshape(d, t * b, -1), w_ih.transpose(1, 2)).reshape(d, t, b, 3 * hid)
        w_hh_t = w_hh.transpose(1, 2).contiguous()
        out = x.new_empty(d, t, b, hid)
        gates = x.new_empty(d, t, b, 3 * hid)  # r, z, n after their non-linearities
        gh_n = x.new_empty(d, t, b, hid)  # W_hn h + b_hn, needed for r's gradient
        h = h0
        for s in range(t):
            gh = torch.baddbmm(b_hh[:, None], h, w_hh_t)
            rz = torch.sigmoid(gi[:, s, :, : 2 * hid] + gh[..., : 2 * hid])
            r, z = rz[..., :hid], rz[..., hid:]
            n = torch.tanh(torch.addcmul(gi[:, s, :, 2 * hid :], r, gh[..., 2 * hid :]))
            h = torch.addcmul(n, z, h - n)
            out[:, s] = h
            gates[:, s, :, : 2 * hid] = rz
            gates[:, s, :, 2 * hid :] = n
            gh_n[:, s] = gh[..., 2 * hid :]
        ctx.save_for_backward(x, h0, w_ih, w_hh, out, gates, gh_n)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        x, h0, w_ih, w_hh, out, gates, gh_n = ctx.saved_tensors
        d, t, b, _ = x.shape
        hid = w_hh.shape[2]
        grad_out = grad_out.contiguous()
        d_gi = x.new_empty(d, t, b, 3 * hid)  # gradient of the input projections (pre-activation)
        d_gh = x.new_empty(d, t, b, 3 * hid)  # gradient of the recurrent projections
        dh = torch.zeros_like(h0)
        for s in range(t - 1, -1, -1):
            dh = dh + grad_out[:, s]
            r, z, n = gates[:, s, :, :hid], gates[:, s, :, hid : 2 * hid], gates[:, s, :, 2 * hid :]
            h_prev = out[:, s - 1] if s > 0 else h0
            dn = dh * (1 - z) * (1 - n * n)  # through tanh
            dz = dh * (h_prev - n) * z * (1 - z)  # through sigmoid
            dr = dn * gh_n[:, s] * r * (1 - r)
            d_gi[:, s, :, :hid] = dr
            d_gi[:, s, :, hid : 2 * hid] = dz
            d_gi[:, s, :, 2 * hid :] = dn
            d_gh[:, s, :, :hid] = dr
            d_gh[:, s, :, hid : 2 * hid] = dz
            d_gh[:, s, :, 2 * hid :] = dn * r
            dh = torch.baddbmm(dh * z, d_gh[:, s], w_hh)
        h_prevs = torch.cat([h0[:, None], out[:, :-1]], dim=1)  # [D, T, B, H]
        flat_gi, flat_gh = d_gi.reshape(d, t * b, 3 * hid), d_gh.reshape(d, t * b, 3 * hid)
        grad_x = torch.bmm(flat_gi, w_ih).reshape(x.shape) if ctx.needs_input_grad[0] else None
        grad_w_ih = torch.bmm(flat_gi.transpose(1, 2), x.reshape(d, t * b, -1))
        grad_w_hh = torch.bmm(flat_gh.transpose(1, 2), h_prevs.reshape(d, t * b, hid))
        return grad_x, dh, grad_w_ih, grad_w_hh, flat_gi.sum(1), flat_gh.sum(1)


def gru(layer: nn.GRU, x: torch.Tensor, h0: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``layer(x, h0)`` for a one-layer, batch-first :class:`nn.GRU` (uni- or bidirectional), same
    outputs ``(y [B, T, D*H], h_n [D, B, H])``, gradients through the fused backward above."""
    if layer.num_layers != 1 or not layer.batch_first or not layer.bias:
        raise ValueError("fused gru supports one batch-first layer with biases")
    suffixes = ["_l0", "_l0_reverse"] if layer.bidirectional else ["_l0"]
    w_ih = torch.stack([getattr(layer, "weight_ih" + s) for s in suffixes])
    w_hh = torch.stack([getattr(layer, "weight_hh" + s) for s in suffixes])
    b_ih = torch.stack([getattr(layer, "bias_ih" + s) for s in suffixes])
    b_hh = torch.stack([getattr(layer, "bias_hh" + s) for s in suffixes])
    seq = x.transpose(0, 1)  # [T, B, I]
    seqs = torch.stack([seq, seq.flip(0)]) if layer.bidirectional else seq[None]
    if h0 is None:
        h0 = x.new_zeros(len(suffixes), x.shape[0], layer.hidden_size)
    out = _FusedGRU.apply(seqs.contiguous(), h0.contiguous(), w_ih, w_hh, b_ih, b_hh)  # [D, T, B, H]
    h_n = out[:, -1]
    if layer.bidirectional:
        y = torch.cat([out[0], out[1].flip(0)], dim=-1)
    else:
        y = out[0]
    return y.transpose(0, 1), h_n


def check_equal() -> float:
    """Largest difference of outputs and gradients against nn.GRU (float64), both layer kinds."""
    torch.manual_seed(0)
    worst = 0.0
    for bidirectional in (False, True):
        layer = nn.GRU(6, 5, batch_first=True, bidirectional=bidirectional).double()
        x = torch.randn(4, 7, 6, dtype=torch.double, requires_grad=True)
        h0 = torch.randn(2 if bidirectional else 1, 4, 5, dtype=torch.double, requires_grad=True)
        results = []
        for fn in (layer, lambda v, h: gru(layer, v, h)):
            y, h_n = fn(x, h0)
            torch.manual_seed(1)
            loss = (y * torch.randn_like(y)).sum() + (h_n * torch.randn_like(h_n)).sum()
            results.append([y, h_n, *torch.autograd.grad(loss, [x, h0, *layer.parameters()])])
        worst = max(worst, *((a - b).abs().max().item() for a, b in zip(*results)))
    return worst


def time_fwd_bwd(fn, x: torch.Tensor, repeats: int) -> float:
    for _ in range(2):
        fn(x)[0].sum().backward()
    start = time.perf_counter()
    for _ in range(repeats):
        fn(x)[0].sum().backward()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"largest difference from nn.GRU (outputs and gradients, float64): {check_equal():.1e}")
    # the shipped CRN's shapes for a batch of 8 three-second crops: 189 frames, 33 bands, 48 channels
    cases = {"frequency GRU (bidirectional, 24 per direction, 1512 sequences of 33)":
             (nn.GRU(48, 24, batch_first=True, bidirectional=True), torch.randn(8 * 189, 33, 48, requires_grad=True)),
             "time GRU (48, 264 sequences of 189)":
             (nn.GRU(48, 48, batch_first=True), torch.randn(8 * 33, 189, 48, requires_grad=True))}
    print("| layer | nn.GRU fwd+bwd (ms) | hand-written backward (ms) |\n|---|---:|---:|")
    for name, (layer, x) in cases.items():
        ours = time_fwd_bwd(lambda v: gru(layer, v), x, args.repeats)
        theirs = time_fwd_bwd(layer, x, args.repeats)
        print(f"| {name} | {1000 * theirs:.0f} | {1000 * ours:.0f} |")


if __name__ == "__main__":
    main()
