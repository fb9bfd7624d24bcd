#!/usr/bin/env python3
"""PyTorch reference for `ebm train` on the 2-D toy sets (docs/training.md).

Not part of CI. Run with a Python that has torch and numpy, e.g.

    python bench/train_toy_torch.py --data eight_gaussians --out /tmp/exp/torch_8g.json

It mirrors the recommended `ebm train` setting:

* data: the toy set drawn exactly as `src/data/toy.rs` does (SM64 counter
  streams, seed `--seed` for training, 10000 rows, 10% held out at random;
  the evaluation set is 5000 rows with seed 1000003, as `ebm evaluate` uses);
* energy: E(x) = MLP(x) + 0.1·|x|², MLP 2-128-128-1 with SiLU (swish),
  weights N(0, 1/fan_in), biases 0 (the rule of docs/language.md §8, not
  the same draws);
* PCD: a 10000-row replay buffer filled with U(lo, hi) over the training
  data's range padded by 10% per side; each iteration draws 256 rows with
  replacement, replaces each by fresh uniform noise with probability 0.05,
  runs K = 20 ULA steps x <- x - (λ/2)∇E + √λ ξ (λ = 0.005) with the
  parameters frozen, and writes the negatives back in place. As in `ebm`
  (src/train/buffer.rs, Replace::Uniform), a negative that started from fresh
  noise is written back into the slot it replaced, as JEM does
  (`--no-writeback-fresh` drops it, as `ebm` did before that fix);
* loss: mean E(x+) - mean E(x-) + α (mean E(x+)² + mean E(x-)²), α = 0.05;
* Adam (β = 0.9, 0.999, eps 1e-8), lr 3e-3 with cosine decay to 0 over the
  run, 5000 iterations.

Then KL(data‖model) (eight_gaussians, checkerboard) and the held-out NLL by
midpoint quadrature on the grid `ebm evaluate` uses: the evaluation set's
range (over both coordinates) padded by 50% per side, 200 × 200 cells, the
data density renormalised on the grid (src/stats/eval.rs). `--ebm-params
DIR/params.safetensors` evaluates an `ebm`-trained energy (the same
architecture, plus `--conf`) with this same code, as a cross-check.
"""
import argparse
import json
import math
import struct
import time

import numpy as np
import torch

MASK = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15


def fnv1a(text):
    h = 0xCBF29CE484222325
    for b in text.encode():
        h ^= b
        h = (h * 0x100000001B3) & MASK
    return h


def sm64_at(seed, i):
    """Vectorised SM64 (SplitMix64 in counter form), src/data/rng.rs."""
    z = (np.uint64(seed) + i.astype(np.uint64) * np.uint64(GOLDEN))
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def toy(name, n, seed):
    """`n` rows of the toy set `name`, exactly as src/data/toy.rs draws them
    (default noise)."""
    with np.errstate(over="ignore"):
        stream = (seed ^ fnv1a(name)) & MASK
        base = np.arange(n, dtype=np.uint64) * np.uint64(8)
        raw = [sm64_at(stream, base + np.uint64(j + 1)) for j in range(8)]
    u = [(r >> np.uint64(11)).astype(np.float64) * 2.0**-53 for r in raw]
    pick = lambda j, m: (((raw[j] >> np.uint64(11)) * np.uint64(m)) >> np.uint64(53)).astype(np.int64)
    rad = np.sqrt(-2.0 * np.log(1.0 - u[4]))
    n0, n1 = rad * np.cos(2 * np.pi * u[5]), rad * np.sin(2 * np.pi * u[5])
    if name == "eight_gaussians":
        k = pick(0, 8)
        t = 2 * np.pi * k / 8
        x = np.stack([2 * np.cos(t) + 0.1 * n0, 2 * np.sin(t) + 0.1 * n1], 1)
    elif name == "two_moons":
        m = pick(0, 2)
        c, s = np.cos(np.pi * u[1]), np.sin(np.pi * u[1])
        p0 = np.where(m == 0, c, 1 - c)
        p1 = np.where(m == 0, s, 0.5 - s)
        x = np.stack([2 * (p0 - 0.5) + 0.1 * n0, 2 * (p1 - 0.25) + 0.1 * n1], 1)
    elif name == "rings":
        r = 0.75 * (pick(0, 4) + 1)
        x = np.stack([r * np.cos(2 * np.pi * u[1]) + 0.08 * n0, r * np.sin(2 * np.pi * u[1]) + 0.08 * n1], 1)
    elif name == "checkerboard":
        x0 = -2.0 + 4.0 * u[1]
        c0 = np.floor(x0).astype(np.int64)
        b = pick(2, 2)
        u52 = (raw[3] >> np.uint64(12)).astype(np.float64) * 2.0**-52
        x1 = (np.mod(c0, 2) - 2 * b) + u52
        x = np.stack([x0, x1], 1)
    else:
        raise SystemExit(f"unknown toy set {name}")
    return x


def known_log_density(name):
    if name == "eight_gaussians":
        t = 2 * np.pi * np.arange(8) / 8
        means = np.stack([2 * np.cos(t), 2 * np.sin(t)], 1)
        s = 0.1

        def f(x):
            q = -((x[:, None, :] - means[None]) ** 2).sum(-1) / (2 * s * s)
            top = q.max(1)
            return -np.log(8) - np.log(2 * np.pi * s * s) + top + np.log(np.exp(q - top[:, None]).sum(1))

        return f
    if name == "checkerboard":

        def f(x):
            inside = np.all((x >= -2) & (x < 2), 1)
            even = np.mod(np.floor(x[:, 0]) + np.floor(x[:, 1]), 2) == 0
            return np.where(inside & even, -np.log(8), -np.inf)

        return f
    return None


class Energy(torch.nn.Module):
    def __init__(self, conf, width=128):
        super().__init__()
        self.conf = conf
        self.l1 = torch.nn.Linear(2, width)
        self.l2 = torch.nn.Linear(width, width)
        self.l3 = torch.nn.Linear(width, 1)
        for lin in (self.l1, self.l2, self.l3):
            torch.nn.init.normal_(lin.weight, 0.0, 1.0 / math.sqrt(lin.in_features))
            torch.nn.init.zeros_(lin.bias)

    def forward(self, x):
        h = torch.nn.functional.silu(self.l1(x))
        h = torch.nn.functional.silu(self.l2(h))
        return self.l3(h)[:, 0] + self.conf * (x * x).sum(1)


def load_ebm_params(path, model):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        raw = f.read()
    p = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        a, b = v["data_offsets"]
        dt = {"F64": "<f8", "F32": "<f4"}[v["dtype"]]
        p[k.split(".")[-1]] = np.frombuffer(raw[a:b], dtype=dt).reshape(v["shape"])
    with torch.no_grad():
        for i, lin in enumerate((model.l1, model.l2, model.l3), 1):
            lin.weight.copy_(torch.tensor(p[f"w{i}"].T.copy()))  # ebm: x @ W, W [in, out]
            lin.bias.copy_(torch.tensor(p[f"b{i}"].copy()))


def grid_eval(model, name, heldout):
    """log Z, held-out NLL and KL(data‖model) on ebm evaluate's grid."""
    lo, hi = heldout.min(), heldout.max()
    pad = 0.5 * max(hi - lo, 1e-6)
    lo, hi, n = lo - pad, hi + pad, 200
    c = lo + (hi - lo) * (np.arange(n) + 0.5) / n
    X0, X1 = np.meshgrid(c, c)  # cell k = (i = k % n along x0, j = k // n along x1)
    pts = np.stack([X0.ravel(), X1.ravel()], 1)
    area = ((hi - lo) / n) ** 2
    with torch.no_grad():
        e = model(torch.tensor(pts, dtype=torch.float64)).numpy()
        eh = model(torch.tensor(heldout, dtype=torch.float64)).numpy()
    m = e.min()
    log_z = -m + np.log(np.exp(m - e).sum()) + np.log(area)
    log_p = -e - log_z
    out = {"log_z": float(log_z), "heldout_nll": float(eh.mean() + log_z), "kl_data_model": None}
    f = known_log_density(name)
    if f is not None:
        lp = f(pts)
        top = lp[np.isfinite(lp)].max()
        log_zd = top + np.log(np.exp(lp - top).sum()) + np.log(area)
        ok = np.isfinite(lp)
        d = lp[ok] - log_zd
        out["kl_data_model"] = float((np.exp(d) * (d - log_p[ok]) * area).sum())
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="eight_gaussians")
    ap.add_argument("--iters", type=int, default=5000)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--sampler-steps", type=int, default=20)
    ap.add_argument("--step", type=float, default=0.005)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--l2", type=float, default=0.05)
    ap.add_argument("--conf", type=float, default=0.1, help="weight of the confining term conf·|x|²")
    ap.add_argument("--buffer", type=int, default=10000)
    ap.add_argument("--reinit", type=float, default=0.05)
    ap.add_argument("--no-writeback-fresh", dest="writeback_fresh", action="store_false")
    ap.add_argument("--no-decay", action="store_true", help="constant lr (default: cosine to 0)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ebm-params", help="evaluate this ebm params.safetensors instead of training")
    ap.add_argument("--out", help="write the result as JSON here")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)
    heldout = toy(a.data, 5000, 1000003)
    model = Energy(a.conf)
    res = {"data": a.data, "args": vars(a)}
    if a.ebm_params:
        model = model.double()
        load_ebm_params(a.ebm_params, model)
        res.update(grid_eval(model, a.data, heldout))
        print(json.dumps(res))
        return
    full = toy(a.data, 10000, a.seed)
    lo, hi = full.min(), full.max()
    pad = 0.1 * (hi - lo)
    lo, hi = lo - pad, hi + pad
    perm = rng.permutation(len(full))
    n_held = int(round(0.1 * len(full)))
    train = torch.tensor(full[perm[n_held:]], dtype=torch.float32)
    buf = torch.empty(a.buffer, 2).uniform_(lo, hi)
    opt = torch.optim.Adam(model.parameters(), lr=a.lr, betas=(0.9, 0.999), eps=1e-8)
    for p in model.parameters():
        p.requires_grad_(True)
    order, at = torch.randperm(len(train)), 0
    sq = math.sqrt(a.step)
    t0 = time.perf_counter()
    losses = []
    for it in range(a.iters):
        if at + a.batch > len(train):
            order, at = torch.randperm(len(train)), 0
        pos = train[order[at : at + a.batch]]
        at += a.batch
        idx = torch.randint(0, a.buffer, (a.batch,))
        x = buf[idx].clone()
        fresh = torch.rand(a.batch) < a.reinit
        x[fresh] = torch.empty(int(fresh.sum()), 2).uniform_(lo, hi)
        for p in model.parameters():
            p.requires_grad_(False)
        for _ in range(a.sampler_steps):
            x.requires_grad_(True)
            g = torch.autograd.grad(model(x).sum(), x)[0]
            x = (x - 0.5 * a.step * g + sq * torch.randn_like(x)).detach()
        for p in model.parameters():
            p.requires_grad_(True)
        lr = a.lr if a.no_decay else a.lr * 0.5 * (1 + math.cos(math.pi * it / a.iters))
        for gr in opt.param_groups:
            gr["lr"] = lr
        ep, en = model(pos), model(x)
        loss = ep.mean() - en.mean() + a.l2 * ((ep**2).mean() + (en**2).mean())
        opt.zero_grad()
        loss.backward()
        opt.step()
        keep = torch.isfinite(x).all(1) & (a.writeback_fresh | ~fresh)
        buf[idx[keep]] = x[keep]
        losses.append(float(loss.detach()))
    secs = time.perf_counter() - t0
    res.update({"iters": a.iters, "seconds": secs, "it_per_s": a.iters / secs, "last_loss": losses[-1]})
    res.update(grid_eval(model.double(), a.data, heldout))
    print(json.dumps(res))
    if a.out:
        with open(a.out, "w") as f:
            json.dump(res, f)


if __name__ == "__main__":
    main()
