#!/usr/bin/env python3
"""Does the Stan ecosystem read ebm's CmdStan output? (Outside CI.)

Runs `ebm sample` on a 2-d energy and on a 2×3 matrix-shaped one, 4 chains ×
200 draws, twice with the same seed: once in ebm's own single-file CSV and once
with `--format cmdstan` (one file per chain). Then loads the CmdStan files with
ArviZ (`az.from_cmdstan`) and cmdstanpy (`cmdstanpy.from_csv`) and checks the
number of chains, draws per chain, the shape of `x`, and that every value of
`x`, lp__ (= −E), accept_stat__, divergent__ and the per-chain step sizes
equals the single-file CSV's exactly (bitwise, through Python's float()).

  /work/venv/bin/python bench/cmdstan_check.py [--ebm target/release/ebm]

Needs numpy, arviz and cmdstanpy (no CmdStan install: from_csv only parses).
Exits 1 when a check fails.
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

ENERGIES = """\
energy corr2(x: [2]) = 0.5 * (x[0]^2 - 1.6 * x[0] * x[1] + x[1]^2) / 0.36
energy mat23(x: [2, 3]) = 0.5 * sum((x - [[1, 2, 3], [4, 5, 6]])^2 / [[1, 2, 3], [1, 2, 3]])
"""
CASES = [("corr2", (2,)), ("mat23", (2, 3))]
CHAINS, DRAWS, SEED = 4, 200, 11


SAMPLERS = ["mala", "nuts"]


def sample(ebm, src, energy, out, fmt, sampler):
    cmd = [ebm, "sample", src, "--energy", energy, "--sampler", sampler, "--chains", str(CHAINS),
           "--steps", str(DRAWS), "--warmup", "200", "--seed", str(SEED),
           "--format", fmt, "--out", out]
    subprocess.run(cmd, check=True, capture_output=True, text=True)


def read_single(path, shape):
    """ebm's own CSV: `# key = value` lines, then chain__,draw__,… rows."""
    header, rows, cols = {}, [], None
    with open(path) as f:
        for line in f:
            if line.startswith("#"):
                if "=" in line:
                    k, v = line[1:].split("=", 1)
                    header[k.strip()] = v.strip()
            elif cols is None:
                cols = line.strip().split(",")
            elif line.strip():
                rows.append([float(v) for v in line.strip().split(",")])
    a = np.array(rows)
    col = {c: i for i, c in enumerate(cols)}
    xs = [i for i, c in enumerate(cols) if c.startswith("x.")]
    per = lambda v: v.reshape(CHAINS, DRAWS)
    return {
        "x": a[:, xs].reshape((CHAINS, DRAWS) + shape),
        "lp": -per(a[:, col["energy__"]]),
        "accept": per(a[:, col["accept__"]]),
        "divergent": per(a[:, col["divergent__"]]).astype(bool),
        "step": np.array([float(s) for s in header["step_sizes"].split()]),
        "metric": np.array([[float(v) for v in header[f"inv_metric_{c}"].split()] for c in range(CHAINS)]),
        "n_leapfrog": per(a[:, col["n_leapfrog__"]]) if "n_leapfrog__" in col else None,
    }


class Report:
    def __init__(self):
        self.failed = 0

    def check(self, what, ok, detail=""):
        self.failed += not ok
        print(f"  {'ok  ' if ok else 'FAIL'} {what}{(': ' + detail) if detail else ''}")


def exact(a, b):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return a.shape == b.shape and np.array_equal(a, b)


def check_arviz(r, files, ref, shape):
    import arviz as az
    idata = az.from_cmdstan(posterior=files)
    post, stats = idata.posterior, idata.sample_stats
    r.check("arviz chains", post.sizes["chain"] == CHAINS, str(post.sizes["chain"]))
    r.check("arviz draws per chain", post.sizes["draw"] == DRAWS, str(post.sizes["draw"]))
    r.check("arviz x shape", post["x"].shape == (CHAINS, DRAWS) + shape, str(post["x"].shape))
    r.check("arviz x equals the single-file CSV", exact(post["x"].values, ref["x"]))
    r.check("arviz lp equals −E", exact(stats["lp"].values, ref["lp"]))
    r.check("arviz acceptance_rate", exact(stats["acceptance_rate"].values, ref["accept"]))
    r.check("arviz diverging", exact(stats["diverging"].values, ref["divergent"]))
    steps = stats["step_size"].values[:, 0]
    r.check("arviz step_size per chain", exact(steps, ref["step"]), str(steps))


def check_cmdstanpy(r, files, ref, shape):
    import cmdstanpy
    fit = cmdstanpy.from_csv(files)
    r.check("cmdstanpy chains", fit.chains == CHAINS, str(fit.chains))
    r.check("cmdstanpy draws per chain", fit.num_draws_sampling == DRAWS, str(fit.num_draws_sampling))
    x = fit.stan_variable("x")
    r.check("cmdstanpy x shape", x.shape == (CHAINS * DRAWS,) + shape, str(x.shape))
    r.check("cmdstanpy x equals the single-file CSV", exact(x, ref["x"].reshape(x.shape)))
    mv = fit.method_variables()
    r.check("cmdstanpy lp__ equals −E", exact(mv["lp__"].T, ref["lp"]))
    r.check("cmdstanpy accept_stat__", exact(mv["accept_stat__"].T, ref["accept"]))
    r.check("cmdstanpy divergent__", exact(mv["divergent__"].T, ref["divergent"]))
    r.check("cmdstanpy step_size per chain", exact(fit.step_size, ref["step"]), str(fit.step_size))
    r.check("cmdstanpy metric_type", fit.metric_type == "diag_e", str(fit.metric_type))
    r.check("cmdstanpy inverse metric per chain", exact(np.asarray(fit.inv_metric), ref["metric"]))
    if ref["n_leapfrog"] is not None:
        r.check("cmdstanpy n_leapfrog__", exact(mv["n_leapfrog__"].T, ref["n_leapfrog"]))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ebm", default=os.path.join(ROOT, "target", "release", "ebm"))
    args = ap.parse_args()
    r = Report()
    with tempfile.TemporaryDirectory(prefix="ebm-cmdstan-") as tmp:
        src = os.path.join(tmp, "e.ebm")
        with open(src, "w") as f:
            f.write(ENERGIES)
        for (energy, shape), sampler in [(c, s) for c in CASES for s in SAMPLERS]:
            print(f"{energy} ({sampler}): x of shape {shape}, {CHAINS} chains × {DRAWS} draws, seed {SEED}")
            single = os.path.join(tmp, f"{energy}_{sampler}.csv")
            base = os.path.join(tmp, sampler, f"{energy}.csv")
            sample(args.ebm, src, energy, single, "ebm", sampler)
            sample(args.ebm, src, energy, base, "cmdstan", sampler)
            files = [os.path.join(tmp, sampler, f"{energy}_{c}.csv") for c in range(1, CHAINS + 1)]
            r.check("one file per chain", all(os.path.exists(p) for p in files)
                    and not os.path.exists(base))
            ref = read_single(single, shape)
            check_arviz(r, files, ref, shape)
            check_cmdstanpy(r, files, ref, shape)
    print("all checks passed" if not r.failed else f"{r.failed} checks FAILED")
    return 1 if r.failed else 0


if __name__ == "__main__":
    sys.exit(main())
