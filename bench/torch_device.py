#!/usr/bin/env python3
"""The shared PyTorch peer (peers_torch.py) with its tensors on another device.

  python bench/torch_device.py --device cuda [peers_torch.py's own flags]

The shared peer builds every tensor on the CPU. This runs that same script,
unchanged, with its workloads' tensors on --device, so W1-W5 on PyTorch
(eager and torch.compile) can be timed beside `ebm ... --backend gpu` on the
same GPU:

- new tensors land on the device (torch.set_default_device), and so do the
  ones the peer builds from NumPy arrays (torch.from_numpy), so its models,
  data, replay buffers and chains all live there;
- `Tensor.numpy()`, which the peer calls to compute its checksums, reads
  device tensors back first;
- every timed run ends with the device synchronised, since CUDA kernels run
  asynchronously and a timer stopped before they finish measures the launches
  alone;
- the framework is reported as e.g. `torch-compile-cuda`, and the env line
  names the device.

The peer scripts are read from ../shared/bench/peers (or EBM_PEERS_DIR), as
bench/compare.py reads them.
"""
import os
import runpy
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
PEERS = os.environ.get("EBM_PEERS_DIR", os.path.join(HERE, "..", "..", "shared", "bench", "peers"))


def split_device(argv):
    """(device, the rest of argv): --device is ours, every other flag is the peer's."""
    rest, device = [], "cuda"
    it = iter(argv)
    for a in it:
        if a == "--device":
            device = next(it, device)
        elif a.startswith("--device="):
            device = a.split("=", 1)[1]
        else:
            rest.append(a)
    return device, rest


def synchronise(torch, device):
    if device.startswith("cuda"):
        return torch.cuda.synchronize
    return lambda: None


def place_on(torch, device):
    """Makes the peer's tensors live on `device` and come back for NumPy."""
    torch.set_default_device(device)
    from_numpy = torch.from_numpy
    torch.from_numpy = lambda a: from_numpy(a).to(device)
    to_numpy = torch.Tensor.numpy
    torch.Tensor.numpy = lambda self, *a, **k: to_numpy(self.detach().cpu(), *a, **k)


def report_device(common, torch, device):
    """Synchronised timing and device-tagged records in the peers' common module."""
    sync_device = synchronise(torch, device)
    time_runs, report, env_line = common.time_runs, common.report, common.env_line
    suffix = "-" + device.split(":")[0]

    def synced_time_runs(fn, repeat, sync=lambda r: r):
        def synced(r):
            sync_device()
            return sync(r)
        return time_runs(fn, repeat, synced)

    def tagged_report(framework, *args, **kwargs):
        return report(framework + suffix, *args, **kwargs)

    def device_env_line(framework, **versions):
        name = torch.cuda.get_device_name() if device.startswith("cuda") else device
        return env_line(framework + suffix, device=name, **versions)

    common.time_runs, common.report, common.env_line = synced_time_runs, tagged_report, device_env_line


def main():
    device, rest = split_device(sys.argv[1:])
    sys.path.insert(0, PEERS)
    import torch
    if device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit(f"torch {torch.__version__} sees no CUDA device")
    place_on(torch, device)
    # peers_torch imports this same module object, so it sees the patched functions.
    import peers_common
    report_device(peers_common, torch, device)
    sys.argv = [os.path.join(PEERS, "peers_torch.py"), *rest]
    runpy.run_path(sys.argv[0], run_name="__main__")


if __name__ == "__main__":
    main()
