#!/usr/bin/env bash
# The JEM experiments of docs/jem.md on the shipped digits (8×8, 10 classes):
# JEM against the same network trained as a plain classifier, over 3 seeds,
# in three settings, then the held-out-classes OOD experiment.
#   standard:      64-128-128-10, all 1,347 training digits, 2000 iterations
#   overconfident: 64-256-256-10, the first 200 training digits, 4000
#                  iterations at lr 1e-4 (far past zero training loss; at
#                  lr 1e-3 this JEM diverges, as JEM is known to)
#   classes:       standard, trained without classes 8 and 9, which then
#                  form the OOD set `classes`
# Usage: examples/jem/experiment.sh [OUT_DIR]   (default out/jem-experiment)
# Prints one JSON line per run and writes every run's folder, reliability
# diagram and class-conditional samples under OUT_DIR.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-out/jem-experiment}
ebm=${EBM:-target/release/ebm}
mkdir -p "$out"
head -n 201 examples/data/digits_train.csv > "$out/digits_train_200.csv"
cat > "$out/wide.ebm" <<'EBM'
model f(x: [8, 8]) -> [10] = mlp(reshape(x, [64]), [256, 256, 10], act = swish)
EBM
run() { # setting program data iters lr exclude seed kind
  local setting=$1 program=$2 data=$3 iters=$4 lr=$5 exclude=$6 seed=$7 kind=$8
  local dir="$out/$setting-$kind-$seed" flags=()
  [ "$kind" = baseline ] && flags+=(--baseline)
  [ -n "$exclude" ] && flags+=(--exclude-classes "$exclude")
  "$ebm" jem "$program" --model f --data "$data" --label label --scale range:-1,1 \
    --iters "$iters" --lr "$lr" --seed "$seed" --eval-every 0 --checkpoint-every 0 \
    "${flags[@]}" --out "$dir" > "$dir.log"
  local eflags=()
  [ -n "$exclude" ] && eflags+=(--exclude-classes "$exclude")
  local json
  json=$("$ebm" evaluate "$program" --model f --params "$dir/params.safetensors" \
    --data examples/data/digits_test.csv --label label --seed "$seed" "${eflags[@]}" \
    --reliability "$dir/reliability.png" --samples "$dir/samples.png" --json)
  echo "{\"setting\": \"$setting\", \"kind\": \"$kind\", \"seed\": $seed, \"eval\": $json}"
}
for seed in 0 1 2; do
  for kind in jem baseline; do
    run standard examples/jem/digits.ebm examples/data/digits_train.csv 2000 0.001 "" "$seed" "$kind"
    run classes examples/jem/digits.ebm examples/data/digits_train.csv 2000 0.001 8,9 "$seed" "$kind"
    run overconfident "$out/wide.ebm" "$out/digits_train_200.csv" 4000 0.0001 "" "$seed" "$kind"
  done
done
