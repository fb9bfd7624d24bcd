#!/usr/bin/env python3
"""PyTorch reference for `ebm train --method sm|ssm|dsm` (docs/objectives.md).

Not part of CI; `bench/score_matching.py` runs it next to `ebm train` in one
run. The workload is W4's (shared/bench/peers: the eight-Gaussian data and
the 2-128-128-1 swish MLP energy with its initial parameters), trained with
the score-matching losses `ebm` uses (src/train/score.rs), per sample:

* sm:  ½|∇E|² − tr ∇²E, the trace from d Hessian-vector products;
* ssm: ½|∇E|² − vᵀ∇²E v, one Rademacher projection per sample (SSM-VR);
* dsm: ½|σ∇E(x + σε) − ε|², σ = 0.1.

Two implementations (`--impl`): `func`, ∇ₓE and the HVPs from torch.func
(grad, jvp, vmap), and `autograd`, the batched double-backward form most
score-matching code uses (torch.autograd.grad with create_graph=True); the
θ-gradient of the batch mean by autograd through either; Adam (lr 1e-3),
batch 256, data in order. Prints one JSON line per method: iterations per second (median of
--rounds timed runs after a warm-up run), and the exact-SM loss of the
first batch at the initial parameters (the cross-check against `ebm`).
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch
from torch.func import functional_call, grad, jvp, vmap

HERE = os.path.dirname(os.path.abspath(__file__))
PEERS = os.path.join(HERE, "..", "..", "shared", "bench", "peers")


class Mlp(torch.nn.Module):
    def __init__(self, params):
        super().__init__()
        self.W1, self.b1, self.W2, self.b2, self.W3, self.b3 = (
            torch.nn.Parameter(torch.tensor(p)) for p in params)

    def forward(self, x):
        h = torch.nn.functional.silu(x @ self.W1 + self.b1)
        h = torch.nn.functional.silu(h @ self.W2 + self.b2)
        return (h @ self.W3 + self.b3)[..., 0]


def losses(model):
    params = dict(model.named_parameters())

    def energy(p, x):
        return functional_call(model, p, (x,))

    score = grad(energy, argnums=1)

    def hvp(p, x, v):
        return jvp(lambda y: score(p, y), (x,), (v,))[1]

    def sm(p, x):
        g = vmap(score, in_dims=(None, 0))(p, x)
        trace = 0.0
        for i in range(x.shape[1]):
            e = torch.zeros_like(x)
            e[:, i] = 1.0
            trace = trace + vmap(hvp, in_dims=(None, 0, 0))(p, x, e)[:, i]
        return (0.5 * (g * g).sum(1) - trace).mean()

    def ssm(p, x, v):
        g = vmap(score, in_dims=(None, 0))(p, x)
        hv = vmap(hvp, in_dims=(None, 0, 0))(p, x, v)
        return (0.5 * (g * g).sum(1) - (v * hv).sum(1)).mean()

    def dsm(p, x, eps, sigma):
        g = vmap(score, in_dims=(None, 0))(p, x + sigma * eps)
        return (0.5 * ((sigma * g - eps) ** 2).sum(1)).mean()

    return params, sm, ssm, dsm


def autograd_losses(model):
    """The same losses by batched double backward (no torch.func)."""
    def score(x):
        x = x.requires_grad_(True)
        return torch.autograd.grad(model(x).sum(), x, create_graph=True)[0]

    def sm(_, x):
        x = x.clone().requires_grad_(True)
        g = score(x)
        trace = sum(torch.autograd.grad(g[:, i].sum(), x, create_graph=True)[0][:, i] for i in range(x.shape[1]))
        return (0.5 * (g * g).sum(1) - trace).mean()

    def ssm(_, x, v):
        x = x.clone().requires_grad_(True)
        g = score(x)
        hv = torch.autograd.grad((g * v).sum(), x, create_graph=True)[0]
        return (0.5 * (g * g).sum(1) - (v * hv).sum(1)).mean()

    def dsm(_, x, eps, sigma):
        g = score((x + sigma * eps).detach())
        return (0.5 * ((sigma * g - eps) ** 2).sum(1)).mean()

    return None, sm, ssm, dsm


def run(method, data, init, iters, batch, sigma, seed, impl="func"):
    torch.manual_seed(seed)
    model = Mlp(init)
    params, sm, ssm, dsm = (losses if impl == "func" else autograd_losses)(model)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    n = data.shape[0]
    start = time.perf_counter()
    for it in range(iters):
        at = (it * batch) % n
        x = data[at:at + batch]
        if method == "sm":
            loss = sm(params, x)
        elif method == "ssm":
            v = torch.randint(0, 2, x.shape, dtype=x.dtype) * 2.0 - 1.0
            loss = ssm(params, x, v)
        else:
            loss = dsm(params, x, torch.randn_like(x), sigma)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return iters / (time.perf_counter() - start), float(loss)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--methods", default="sm,ssm,dsm")
    ap.add_argument("--iters", type=int, default=200)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--sigma", type=float, default=0.1)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--impl", default="func,autograd")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    sys.path.insert(0, PEERS)
    import peers_common as C
    data = torch.tensor(C.gmm_data(10000))
    init = C.mlp_params(C.MLP2_SIZES, C.MLP2_SEEDS)
    model = Mlp(init)
    params, sm, _, _ = losses(model)
    first = float(sm(params, data[:a.batch]).detach())
    for impl in a.impl.split(","):
        for method in a.methods.split(","):
            run(method, data, init, min(20, a.iters), a.batch, a.sigma, 0, impl)
            rates = [run(method, data, init, a.iters, a.batch, a.sigma, r, impl)[0] for r in range(a.rounds)]
            print(json.dumps({"framework": f"torch-{impl}", "method": method,
                              "iters_per_s": round(sorted(rates)[len(rates) // 2], 2),
                              "rates": [round(r, 2) for r in rates], "batch": a.batch,
                              "threads": torch.get_num_threads(), "sm_loss_first_batch_init": first}), flush=True)


if __name__ == "__main__":
    main()
