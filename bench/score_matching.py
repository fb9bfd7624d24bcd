#!/usr/bin/env python3
"""Score-matching training throughput: `ebm train --method sm|ssm|dsm` next to
PyTorch (bench/score_matching_torch.py, torch.func and autograd) in one run.

    /path/to/python bench/score_matching.py [--ebm target/release/ebm] [--iters 200] [--rounds 3]

The workload is W4's (shared/bench/peers): the eight-Gaussian data (10000
rows, in order), the 2-128-128-1 swish MLP energy of bench/workloads/mlp.ebm
with the peers' initial parameters, batch 256, Adam at 1e-3; ssm with one
Rademacher projection, dsm with σ = 0.1. ebm's rate is the it/s that `ebm
train` reports for its training loop (f32, the machine's threads), median of
--rounds runs after a warm-up run. Also checks ebm's exact-SM loss of the
first batch at the initial parameters (row 0 of metrics.csv) against
PyTorch's.
"""
import argparse
import csv
import json
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
PEERS = os.path.join(HERE, "..", "..", "shared", "bench", "peers")
sys.path.insert(0, HERE)
sys.path.insert(0, PEERS)


def ebm_rates(ebm, method, data_csv, params, iters, rounds, out):
    argv = [ebm, "train", os.path.join(HERE, "workloads", "mlp.ebm"), "--energy", "mlp", "--data", data_csv,
            "--no-shuffle", "--heldout", "0", "--method", method, "--iters", str(iters), "--batch", "256",
            "--lr", "1e-3", "--projections", "1", "--projection", "rademacher", "--sigma", "0.1",
            "--init-params", params, "--dtype", "f32", "--checkpoint-every", "0", "--eval-every", "0",
            "--out", out]
    rates = []
    for _ in range(rounds + 1):
        p = subprocess.run(argv, capture_output=True, text=True)
        m = re.search(r"([0-9.]+) it/s", p.stdout)
        if p.returncode != 0 or not m:
            sys.exit(f"ebm train --method {method} failed: {(p.stderr or p.stdout)[-500:]}")
        rates.append(float(m.group(1)))
    with open(os.path.join(out, "metrics.csv")) as f:
        first = float(next(csv.DictReader(f))["loss"])
    rates = rates[1:]
    return sorted(rates)[len(rates) // 2], rates, first


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ebm", default=os.path.join(HERE, "..", "target", "release", "ebm"))
    ap.add_argument("--iters", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--methods", default="sm,ssm,dsm")
    a = ap.parse_args()
    import numpy as np
    import peers_common as C
    from compare import write_safetensors
    tmp = tempfile.mkdtemp(prefix="ebm-sm-")
    data_csv = os.path.join(tmp, "w4.csv")
    np.savetxt(data_csv, C.gmm_data(10000).astype(np.float64), delimiter=",", header="x0,x1", comments="", fmt="%.9g")
    params = os.path.join(tmp, "init.safetensors")
    write_safetensors(params, dict(zip(["W1", "b1", "W2", "b2", "W3", "b3"], C.mlp_params(C.MLP2_SIZES, C.MLP2_SEEDS))))
    torch_out = subprocess.run([sys.executable, os.path.join(HERE, "score_matching_torch.py"), "--methods", a.methods,
                                "--iters", str(a.iters), "--rounds", str(a.rounds)], capture_output=True, text=True)
    peers = [json.loads(l) for l in torch_out.stdout.splitlines() if l.startswith("{")]
    if not peers:
        sys.exit(f"the PyTorch reference failed: {torch_out.stderr[-500:]}")
    print("| method | ebm it/s | torch.func it/s | torch autograd it/s | ebm / best torch |")
    print("| --- | --- | --- | --- | --- |")
    records = []
    for method in a.methods.split(","):
        rate, rates, first = ebm_rates(a.ebm, method, data_csv, params, a.iters, a.rounds, os.path.join(tmp, method))
        by = {p["framework"]: p["iters_per_s"] for p in peers if p["method"] == method}
        best = max(by.values())
        print(f"| {method} | {rate:.0f} | {by.get('torch-func', float('nan')):.1f} | "
              f"{by.get('torch-autograd', float('nan')):.1f} | {rate / best:.1f}× |")
        records.append({"method": method, "ebm_iters_per_s": rate, "ebm_rates": rates, "torch": by,
                        "ratio_to_best_torch": rate / best, "ebm_first_loss": first})
    ref = peers[0]["sm_loss_first_batch_init"]
    sm = [r for r in records if r["method"] == "sm"]
    if sm:
        rel = abs(sm[0]["ebm_first_loss"] - ref) / abs(ref)
        print(f"\nexact SM loss of the first batch at the initial parameters: ebm {sm[0]['ebm_first_loss']:.6g}, "
              f"torch {ref:.6g} (relative difference {rel:.1e}, f32)")
    print(json.dumps(records))


if __name__ == "__main__":
    main()
