#!/usr/bin/env python3
"""NUTS: ebm next to BlackJAX on the same targets, and the dense-metric check.

Targets (bench/workloads/nuts.ebm; the same log densities in JAX below): a 2-D
Gaussian with unit scales (`iid`), correlation -0.99 (`corr`), scales 1 and
1e-3 (`scales`), the statistical suite's banana, and a 100-d Gaussian with
scales 0.1..10 (`gauss100`).

Protocol, the same for both: C chains, each with its own window adaptation
(W warm-up iterations, target acceptance 0.8, the given metric) and N draws,
f32. ebm runs `ebm sample --sampler nuts` as a user does (its figures are the
run's own: engine seconds without the millisecond compile, gradient
evaluations from the CSV header); BlackJAX runs `window_adaptation` + `nuts`
vmapped over chains, jitted, timed on a second call (compile excluded). Both
count every gradient evaluation of warm-up and sampling; ESS is ArviZ's bulk
ESS (the minimum over coordinates) of the N draws, the same function for
both. Reported: gradient evaluations per second, ESS per second (over the
whole run) and the acceptance after warm-up.

`--dense-check` instead runs ebm alone: MALA and NUTS with a dense metric on
`corr` and `scales` against the same sampler on `iid`, ESS/s ratios (the
issue's "within 2x" check).

  /work/venv/bin/python bench/nuts_compare.py --ebm target/release/ebm
"""
import argparse
import json
import os
import re
import subprocess
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
WORKLOAD = os.path.join(HERE, "workloads", "nuts.ebm")
DIMS = {"iid": 2, "corr": 2, "scales": 2, "banana": 2, "gauss100": 100}


def ess_min(draws):
    """Bulk ESS, minimum over coordinates; draws is chains x draws x dim."""
    import arviz as az
    ds = az.convert_to_dataset(np.asarray(draws, dtype=np.float64))
    return float(az.ess(ds, method="bulk")["x"].min())


def read_ebm_csv(path, chains, dim):
    header, rows = {}, []
    with open(path) as f:
        for line in f:
            if line.startswith("#"):
                k, _, v = line[1:].partition("=")
                header[k.strip()] = v.strip()
            elif line.startswith("chain__"):
                cols = line.strip().split(",")
            else:
                rows.append([float(v) for v in line.split(",")])
    a = np.asarray(rows)
    xi = [cols.index(f"x.{i}") for i in range(dim)]
    n = len(rows) // chains
    x = a[:, xi].reshape(chains, n, dim)
    return header, x


def run_ebm(ebm, target, sampler, metric, chains, warmup, draws, seed):
    out = os.path.join(tempfile.gettempdir(), f"ebm-nuts-{os.getpid()}.csv")
    argv = [ebm, "sample", WORKLOAD, "--energy", target, "--sampler", sampler, "--metric", metric,
            "--chains", str(chains), "--warmup", str(warmup), "--steps", str(draws), "--seed", str(seed),
            "--dtype", "f32", "--out", out]
    t = time.perf_counter()
    p = subprocess.run(argv, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if p.returncode != 0:
        raise SystemExit(p.stderr)
    secs = float(re.search(r"([0-9.]+) s, [0-9.e+]+ chain-steps/s", p.stdout).group(1))
    header, x = read_ebm_csv(out, chains, DIMS[target])
    os.remove(out)
    evals = float(header["gradient_evaluations"])
    ess = ess_min(x)
    return {"framework": "ebm", "workload": f"{sampler}_{target}", "target": target, "sampler": sampler, "metric": metric,
            "seconds_median": secs,
            "seconds": secs, "command_s": round(wall, 3), "grad_evals": evals,
            "grad_evals_per_s": evals / secs, "ess": ess, "ess_per_s": ess / secs,
            "accept": float(header["accept_rate"])}


def jax_logdensity(target):
    import jax.numpy as jnp
    if target == "iid":
        return lambda x: -0.5 * jnp.sum(x * x)
    if target == "corr":
        return lambda x: -0.5 * (x[0] ** 2 + 1.98 * x[0] * x[1] + x[1] ** 2) / (1 - 0.99 ** 2)
    if target == "scales":
        return lambda x: -0.5 * (x[0] ** 2 + (x[1] / 0.001) ** 2)
    if target == "banana":
        return lambda x: -0.5 * ((x[0] - 0.5) / 0.6) ** 2 - 0.5 * (x[1] - x[0] ** 2) ** 2
    if target == "gauss100":
        s = jnp.exp(jnp.linspace(-2.302585, 2.302585, 100))
        return lambda x: -0.5 * jnp.sum((x / s) ** 2)
    raise ValueError(target)


def run_blackjax(target, metric, chains, warmup, draws, seed):
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    import jax
    import blackjax
    logdensity = jax_logdensity(target)
    dim = DIMS[target]

    def one_chain(key, x0):
        k1, k2 = jax.random.split(key)
        adapt = blackjax.window_adaptation(blackjax.nuts, logdensity, is_mass_matrix_diagonal=(metric == "diag"),
                                           target_acceptance_rate=0.8)
        (state, params), winfo = adapt.run(k1, x0, num_steps=warmup)
        kernel = blackjax.nuts(logdensity, **params).step

        def body(s, k):
            s, info = kernel(k, s)
            return s, (s.position, info.num_integration_steps, info.acceptance_rate)

        _, (xs, n, acc) = jax.lax.scan(body, state, jax.random.split(k2, draws))
        return xs, n.sum() + winfo.info.num_integration_steps.sum(), acc.mean()

    run = jax.jit(jax.vmap(one_chain))

    def call(s):
        keys = jax.random.split(jax.random.PRNGKey(s), chains)
        x0 = jax.random.normal(jax.random.PRNGKey(s + 1), (chains, dim))
        return jax.block_until_ready(run(keys, x0))

    call(seed + 1000)  # compile
    t = time.perf_counter()
    xs, n, acc = call(seed)
    secs = time.perf_counter() - t
    evals = float(np.asarray(n).sum())
    ess = ess_min(np.asarray(xs))
    return {"framework": "blackjax", "workload": f"nuts_{target}", "target": target, "sampler": "nuts", "metric": metric,
            "seconds": secs, "seconds_median": secs,
            "grad_evals": evals, "grad_evals_per_s": evals / secs, "ess": ess, "ess_per_s": ess / secs,
            "accept": float(np.asarray(acc).mean()), "blackjax": blackjax.__version__}


def table(rows, keys):
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for r in rows:
        cells = []
        for k in keys:
            v = r.get(k, "")
            cells.append(f"{v:.4g}" if isinstance(v, float) else str(v))
        print("| " + " | ".join(cells) + " |")


def compare(a):
    rows = []
    for target in a.targets.split(","):
        e = run_ebm(a.ebm, target, "nuts", a.metric, a.chains, a.warmup, a.draws, a.seed)
        b = run_blackjax(target, a.metric, a.chains, a.warmup, a.draws, a.seed)
        for r in (e, b):
            print(json.dumps(r), flush=True)
        rows.append({"target": target, "ebm evals/s": e["grad_evals_per_s"], "blackjax evals/s": b["grad_evals_per_s"],
                     "evals/s ratio": e["grad_evals_per_s"] / b["grad_evals_per_s"],
                     "ebm ESS/s": e["ess_per_s"], "blackjax ESS/s": b["ess_per_s"],
                     "ESS/s ratio": e["ess_per_s"] / b["ess_per_s"],
                     "ebm accept": e["accept"], "blackjax accept": b["accept"],
                     "ebm evals/draw": e["grad_evals"] / (a.chains * (a.warmup + a.draws)),
                     "blackjax evals/draw": b["grad_evals"] / (a.chains * (a.warmup + a.draws))})
    print(f"\nNUTS, {a.chains} chains x ({a.warmup} warm-up + {a.draws} draws), metric {a.metric}, f32")
    table(rows, list(rows[0].keys()))


def dense_check(a):
    rows = []
    for sampler in ("mala", "nuts"):
        base = run_ebm(a.ebm, "iid", sampler, "dense", a.chains, a.warmup, a.draws, a.seed)
        for target in ("iid", "corr", "scales"):
            r = base if target == "iid" else run_ebm(a.ebm, target, sampler, "dense", a.chains, a.warmup, a.draws, a.seed)
            print(json.dumps(r), flush=True)
            rows.append({"sampler": sampler, "target": target, "ESS": r["ess"], "seconds": r["seconds"],
                         "ESS/s": r["ess_per_s"], "ratio to iid": r["ess_per_s"] / base["ess_per_s"],
                         "accept": r["accept"]})
    print(f"\nDense metric, {a.chains} chains x ({a.warmup} warm-up + {a.draws} draws), f32")
    table(rows, list(rows[0].keys()))


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--ebm", default=os.path.join(HERE, "..", "target", "release", "ebm"))
    p.add_argument("--targets", default="iid,corr,scales,banana,gauss100")
    p.add_argument("--metric", default="diag", choices=["diag", "dense"])
    p.add_argument("--chains", type=int, default=16)
    p.add_argument("--warmup", type=int, default=500)
    p.add_argument("--draws", type=int, default=1000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--dense-check", action="store_true")
    p.add_argument("--repeat", type=int, default=1, help="accepted for bench/compare.py; one run each")
    a = p.parse_args()
    dense_check(a) if a.dense_check else compare(a)
