#!/usr/bin/env python3
"""BlackJAX MALA and HMC throughput on the eight-Gaussian mixture (W1's energy),
for comparison with `ebm bench --workload mala_gmm2d,hmc_gmm2d`.

Same target, chain count, step sizes and step counts as ebm's workloads:
  mala_gmm2d: 4096 chains x 500 MALA steps, step size 0.01 (fixed), 1 gradient per step.
  hmc_gmm2d:  4096 chains x 100 HMC iterations, step size 0.01, 10 leapfrog steps,
              identity mass matrix: 10 gradient evaluations per iteration.
Reported: gradient evaluations per second (chains x steps x gradients per step / median s).
Run with the peers' virtualenv: python bench/blackjax_samplers.py --repeat 5
"""
import argparse
import json
import math
import os
import statistics
import sys
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import blackjax  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
PEERS = os.path.join(HERE, "..", "..", "shared", "bench", "peers")
sys.path.insert(0, os.environ.get("EBM_PEERS_DIR", PEERS))
import peers_common as C  # noqa: E402

CHAINS = 4096
MU = jnp.asarray(C.gmm_means())
SIGMA = 0.1


def logdensity(x):
    d2 = jnp.sum((x[None, :] - MU) ** 2, axis=1)
    return jax.scipy.special.logsumexp(-d2 / (2 * SIGMA ** 2))


def run(kind, steps, repeat):
    x0 = jnp.asarray(C.sm64_normal(1, CHAINS * 2).reshape(CHAINS, 2).astype(np.float32))
    if kind == "mala":
        alg = blackjax.mala(logdensity, step_size=0.01)
        grads = 1
    else:
        alg = blackjax.hmc(logdensity, step_size=0.01, inverse_mass_matrix=jnp.ones(2), num_integration_steps=10)
        grads = 10
    init = jax.vmap(alg.init)
    step = jax.vmap(alg.step)

    @jax.jit
    def loop(x, key):
        state = init(x)

        def body(i, carry):
            state, key, acc = carry
            key, sub = jax.random.split(key)
            state, info = step(jax.random.split(sub, CHAINS), state)
            return state, key, acc + info.acceptance_rate.mean()

        state, _, acc = jax.lax.fori_loop(0, steps, body, (state, key, 0.0))
        return state.position, acc / steps

    key = jax.random.PRNGKey(1234)
    t0 = time.perf_counter()
    jax.block_until_ready(loop(x0, key))
    warm = time.perf_counter() - t0
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        pos, acc = jax.block_until_ready(loop(x0, key))
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    r = np.sqrt((np.asarray(pos, dtype=np.float64) ** 2).sum(1)).mean()
    print(json.dumps({
        "framework": "blackjax", "workload": f"{kind}_gmm2d", "seconds_median": round(med, 6),
        "grad_evals_per_s": round(CHAINS * steps * grads / med, 1),
        "checksum": {"mean_radius": round(float(r), 6), "accept": round(float(acc), 4)},
        "warmup_s": round(warm, 4), "repeat": repeat, "blackjax": blackjax.__version__, "jax": jax.__version__,
    }), flush=True)


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--repeat", type=int, default=5)
    a = p.parse_args()
    run("mala", 500, a.repeat)
    run("hmc", 100, a.repeat)
