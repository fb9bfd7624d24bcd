#!/usr/bin/env bash
# W1-W5 on a real GPU: `ebm ... --backend gpu` next to PyTorch (eager and
# torch.compile) on CUDA, on the same device, in one short run.
#
# The machine that runs it has the NVIDIA driver, Python with torch and numpy,
# and no network. Everything else is prepared beforehand, in the repository's
# root, on a machine with Debian's package mirror:
#
#   cargo build --release
#   bench/gpu_device.sh --prepare
#
# which fills .gpu-bench/ (in .gitignore; about 20 MB): the stripped ebm
# binary, the Vulkan loader's package and the peer scripts. Then, on the GPU
# machine, with .gpu-bench/ copied beside the checkout:
#
#   bench/gpu_device.sh OUT_DIR     # OUT_DIR/table.md, OUT_DIR/bench.jsonl, OUT_DIR/log
#
# EBM_PEER_DEVICE=cpu runs the same script without CUDA (PyTorch on the CPU,
# ebm on whatever Vulkan adapter there is), to try it out beforehand.
#
# The run is sized to finish in about five minutes on the GPU machine (one
# round, three timed repeats); torch.compile's warm-ups take most of it.
set -euo pipefail
cd "$(dirname "$0")/.."
KIT=.gpu-bench

prepare() {
    local lists=/tmp/ebm-apt-amd64
    local apt=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists="$lists")
    [ -x target/release/ebm ] || { echo "target/release/ebm is missing: cargo build --release" >&2; exit 1; }
    mkdir -p "$KIT/deb" "$KIT/peers" "$lists/partial"
    strip -o "$KIT/ebm" target/release/ebm
    apt-get "${apt[@]}" update
    (cd "$KIT/deb" && apt-get "${apt[@]}" download libvulkan1)
    install -m 644 "${EBM_PEERS_DIR:-../shared/bench/peers}"/*.py "$KIT/peers/"
    du -sh "$KIT"
}

# The Vulkan loader comes from Debian's package where the machine has none
# (a machine that has one keeps its own files); the driver's ICD from the
# machine's NVIDIA mount when the loader's own search finds none.
vulkan() {
    if ! ldconfig -p | grep -q libvulkan.so.1; then
        for f in "$KIT"/deb/*.deb; do dpkg -x "$f" /; done
        ldconfig
    fi
    local icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
    if ! ls /usr/share/vulkan/icd.d/*.json /etc/vulkan/icd.d/*.json >/dev/null 2>&1 && [ -f "$icd" ]; then
        export VK_DRIVER_FILES="$icd"
    fi
}

run() {
    local out=$1 peer_device=${EBM_PEER_DEVICE:-cuda} ebm=$KIT/ebm
    if [ ! -x "$ebm" ] || ! ls "$KIT"/deb/*.deb "$KIT"/peers/peers_torch.py >/dev/null 2>&1; then
        echo "$KIT/ is incomplete: run bench/gpu_device.sh --prepare first, then copy $KIT/ here" >&2
        exit 1
    fi
    mkdir -p "$out"
    vulkan
    {
        nvidia-smi -L || true
        python3 -c 'import torch; print("torch", torch.__version__, "cuda:", torch.cuda.is_available())' || true
        # The adapter ebm picks, from a short sample's run summary.
        "$ebm" sample bench/workloads/gmm2d.ebm --energy gmm --sampler ula --step 0.01 \
            --chains 64 --warmup 0 --steps 10 --backend gpu --dtype f32 --out "$out/probe.csv"
    } 2>&1 | tee "$out/log"
    EBM_PEERS_DIR=$KIT/peers PYTHONUNBUFFERED=1 python3 bench/compare.py --ebm "$ebm" \
        --backend gpu --peer-device "$peer_device" --only ebm,torch,train,jem \
        --rounds 1 --repeat 3 --tries 1 --out "$out/bench.jsonl" 2>>"$out/log" | tee "$out/table.md"
}

case "${1:-}" in
    --prepare) prepare ;;
    "") echo "usage: bench/gpu_device.sh --prepare | OUT_DIR" >&2; exit 2 ;;
    *) run "$1" ;;
esac
