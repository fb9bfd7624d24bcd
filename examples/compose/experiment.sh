#!/usr/bin/env bash
# The composition experiment of docs/composition.md: trains concept energies
# on examples/compose/cells.csv (a 3 × 3 grid of clusters with cell (2, 2)
# held out), composes them in new scripts, and measures where the samples
# land. Writes examples/compose/out/{col,row,col_full,row_full,joint}/
# (training runs and model files), out/logz.json, out/samples/*.csv,
# out/{grid,held_out,not,mixture}.png and out/table.md.
#
#   examples/compose/experiment.sh [ITERS] [SEED]
#
# About two minutes on two cores. Set EBM to use another binary.
set -euo pipefail
cd "$(dirname "$0")"
iters=${1:-1500}
seed=${2:-0}
ebm=${EBM:-../../target/release/ebm}
[ -x "$ebm" ] || (cd ../.. && cargo build --release)
mkdir -p out/samples

train() { # energy label out
  "$ebm" train concepts.ebm --energy "$1" --data cells.csv --columns x,y --label "$2" \
    --iters "$iters" --batch 256 --sampler-steps 20 --step 0.01 --lr 0.003 --l2 0.05 \
    --seed "$seed" --out "out/$3" > "out/$3.train.txt"
  echo "$3: $(head -1 "out/$3.train.txt")"
}
train concept a col
train concept b row
train concept_full a col_full
train concept_full b row_full
train joint cell joint

"$ebm" run compose.ebm > out/compose.txt
for e in cell_11 col_2; do
  "$ebm" logz compose.ebm --energy "$e" --runs 10 --chains 128 --steps 1000 --json > "out/logz_$e.json"
done
python3 - <<'PY'
import json
z = [json.load(open(f"out/logz_{e}.json")) for e in ("cell_11", "col_2")]
json.dump({"logz": [v["logz"] for v in z], "se": [v["se"] for v in z]}, open("out/logz.json", "w"))
print("log Z(cell_11) = %.3f ± %.3f, log Z(col_2) = %.3f ± %.3f" % (z[0]["logz"], z[0]["se"], z[1]["logz"], z[1]["se"]))
PY
"$ebm" run mixture.ebm > out/mixture.txt

python3 - <<'PY'
import csv, json, math
CENTERS = (-2.0, 0.0, 2.0)

def points(name):
    rows = csv.DictReader(l for l in open(f"out/samples/{name}.csv") if not l.startswith("#"))
    return [(float(r["x.0"]), float(r["x.1"])) for r in rows]

def cell(p):
    """The (a, b) cell a point lies in: within 1 of a cluster centre in both coordinates."""
    a = min(range(3), key=lambda i: abs(p[0] - CENTERS[i]))
    b = min(range(3), key=lambda j: abs(p[1] - CENTERS[j]))
    return (a, b) if abs(p[0] - CENTERS[a]) < 1 and abs(p[1] - CENTERS[b]) < 1 else None

def share(pts, pred):
    k = sum(1 for p in pts if pred(p))
    f = k / len(pts)
    return f, math.sqrt(f * (1 - f) / len(pts))

def row(name, label, target):
    """A table row: the share in `target` and the two likeliest other places."""
    pts = points(name)
    f, se = share(pts, lambda p: cell(p) == target)
    cells = {}
    for p in pts:
        cells[cell(p)] = cells.get(cell(p), 0) + 1
    top = sorted(((v, "no cell" if k is None else str(k)) for k, v in cells.items() if k != target), reverse=True)[:2]
    rest = ", ".join(f"{k}: {v / len(pts):.2f}" for v, k in top)
    return f"| {label} | {len(pts)} | {f:.3f} ± {se:.3f} | {rest} |"

out = ["| energy | samples | in the target cell | where the rest went |", "| --- | --- | --- | --- |"]
for a in range(3):
    for b in range(3):
        tag = " (held out)" if (a, b) == (2, 2) else ""
        out.append(row(f"cell_{a}{b}", f"`cell_{a}{b}`{tag}", (a, b)))
for name, what in (("joint_22", "joint-label baseline"), ("full_22", "full-input concepts")):
    out.append(row(name, f"`{name}` ({what})", (2, 2)))
out.append("")
out.append("| energy | samples in cell (0, 0) | in the rest of column 0 |")
out.append("| --- | --- | --- |")
for name in ("col_0", "col_0_not_row_0"):
    pts = points(name)
    f, se = share(pts, lambda p: cell(p) == (0, 0))
    g, ge = share(pts, lambda p: cell(p) in ((0, 1), (0, 2)))
    out.append(f"| `{name}` | {f:.3f} ± {se:.3f} | {g:.3f} ± {ge:.3f} |")
out.append("")
z = json.load(open("out/logz.json"))
out.append(f"log Z(cell_11) = {z['logz'][0]:.3f} ± {z['se'][0]:.3f}, log Z(col_2) = {z['logz'][1]:.3f} ± {z['se'][1]:.3f} (AIS, 10 runs × 128 chains × 1000 temperatures)")
out.append("")
out.append("| mixture | samples | share in cell (1, 1) (intended 0.700) | share in column 2 (intended 0.300) |")
out.append("| --- | --- | --- | --- |")
for name in ("mix_raw", "mix_normalised"):
    pts = points(name)
    f0, s0 = share(pts, lambda p: cell(p) == (1, 1))
    f2, s2 = share(pts, lambda p: abs(p[0] - CENTERS[2]) < 1)
    out.append(f"| `{name}` | {len(pts)} | {f0:.3f} ± {s0:.3f} | {f2:.3f} ± {s2:.3f} |")
open("out/table.md", "w").write("\n".join(out) + "\n")
print("\n".join(out))
PY
