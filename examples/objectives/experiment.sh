#!/usr/bin/env bash
# Trains the 2-D MLP energy of examples/train/mlp2d.ebm on four toy sets with
# every training method (PCD, exact / sliced / denoising score matching,
# NCE) and judges each with `ebm evaluate` (docs/objectives.md):
# quadrature KL(data‖model) and held-out NLL, MMD² of long-run MALA samples,
# support, and the training throughput.
#
#   examples/objectives/experiment.sh [OUT_DIR] [ITERS]
#
# Writes OUT_DIR/METHOD_DATA/{params.safetensors,metrics.csv,loss.png,
# eval.json,eval.png} and OUT_DIR/table.md. Takes about 15 minutes on two
# cores. Set EBM to use another binary (default: target/release/ebm).
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-out/objectives}
iters=${2:-5000}
ebm=${EBM:-target/release/ebm}
[ -x "$ebm" ] || cargo build --release
mkdir -p "$out"
energy=examples/train/mlp2d.ebm

# Each method with the settings docs/objectives.md discusses; the rest are
# `ebm train`'s defaults (5000 iterations, batch 256, Adam at 3e-3 with
# cosine decay).
declare -A flags=(
  [pcd]="--method pcd"
  [sm]="--method sm"
  [ssm]="--method ssm --projections 1 --projection rademacher"
  [dsm]="--method dsm --sigma 0.05,0.1,0.2"
  [nce]="--method nce --nce-noise fitted:1.5 --nce-ratio 4"
)
methods=(pcd sm ssm dsm nce)
sets=(eight_gaussians two_moons rings checkerboard)

for d in "${sets[@]}"; do
  for m in "${methods[@]}"; do
    dir="$out/${m}_$d"
    # shellcheck disable=SC2086
    "$ebm" train "$energy" --energy e --data "toy:$d" ${flags[$m]} \
      --iters "$iters" --seed 0 --out "$dir" > "$dir.train.txt"
    "$ebm" evaluate "$energy" --energy e --params "$dir/params.safetensors" \
      --data "toy:$d" --json --plot "$dir/eval.png" > "$dir/eval.json"
    echo "$m on $d: $(head -1 "$dir.train.txt")"
  done
done

python3 - "$out" "${methods[@]}" <<'PY'
import json, re, sys
out, methods = sys.argv[1], sys.argv[2:]
sets = ["eight_gaussians", "two_moons", "rings", "checkerboard"]
rows = ["| data | method | it/s | KL(data‖model) | held-out NLL | MMD² (floor) | support |",
        "| --- | --- | --- | --- | --- | --- | --- |"]
for d in sets:
    for m in methods:
        base = f"{out}/{m}_{d}"
        ev = json.load(open(f"{base}/eval.json"))
        line = open(f"{base}.train.txt").readline()
        rate = re.search(r"([0-9.]+) it/s", line).group(1)
        kl = ev.get("kl_data_model")
        kl = "—" if kl is None else f"{kl:.3f}"
        rows.append(f"| {d} | {m} | {float(rate):.0f} | {kl} | {ev['heldout_nll']:.3f} | "
                    f"{ev['mmd2']:.1e} ({ev['mmd2_noise_floor']:.1e}) | {100 * ev['support']:.1f}% |")
open(f"{out}/table.md", "w").write("\n".join(rows) + "\n")
print("\n".join(rows))
PY
