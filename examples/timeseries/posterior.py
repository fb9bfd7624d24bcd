#!/usr/bin/env python3
"""Posterior means of the natural parameters from an `ebm sample` CSV of
arma.ebm or garch.ebm (standard library only):

    python3 posterior.py arma  arma_draws.csv
    python3 posterior.py garch garch_draws.csv

Prints, per parameter, the posterior mean, sd, 5% and 95% quantiles, the
value the data were generated with, and how many posterior sds apart the
two are.
"""

import csv
import math
import sys

TRUE = {
    "arma": {"mu": 0.5, "phi": 0.6, "theta": 0.3, "sigma": 0.8},
    "garch": {"omega": 0.1, "alpha": 0.15, "beta": 0.75, "alpha+beta": 0.9},
}


def sigmoid(u):
    return 1 / (1 + math.exp(-u))


def natural(model, x):
    if model == "arma":
        return {
            "mu": x[0],
            "phi": math.tanh(x[1]),
            "theta": math.tanh(x[2]),
            "sigma": math.exp(x[3]),
        }
    alpha = sigmoid(x[1])
    beta = (1 - alpha) * sigmoid(x[2])
    return {
        "omega": math.exp(x[0]),
        "alpha": alpha,
        "beta": beta,
        "alpha+beta": alpha + beta,
    }


def main(model, path):
    with open(path) as f:
        rows = [r for r in csv.reader(line for line in f if not line.startswith("#"))]
    header, rows = rows[0], rows[1:]
    cols = [i for i, h in enumerate(header) if h.startswith("x.")]
    draws = [natural(model, [float(r[i]) for i in cols]) for r in rows]
    print(f"{len(draws)} draws of {path}")
    print(f"{'':>12} {'mean':>8} {'sd':>8} {'5%':>8} {'95%':>8} {'true':>8} {'z':>6}")
    for name, truth in TRUE[model].items():
        v = sorted(d[name] for d in draws)
        n = len(v)
        mean = sum(v) / n
        sd = math.sqrt(sum((a - mean) ** 2 for a in v) / (n - 1))
        z = (mean - truth) / sd
        print(
            f"{name:>12} {mean:8.3f} {sd:8.3f} {v[n // 20]:8.3f} {v[n * 19 // 20]:8.3f} {truth:8.3f} {z:6.2f}"
        )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
