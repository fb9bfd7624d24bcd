"""Writes mlp_state_dict.safetensors (a PyTorch nn.Sequential's state dict,
float32, written in the safetensors layout without the `safetensors`
package) and mlp_reference.json (the network's outputs and input gradients
at a few points, computed by PyTorch in float64 from the float32 weights).
tests/artifact.rs imports the state dict with `ebm build --map` and checks
ebm's energy and gradient against these numbers.

    python3 make_state_dict.py     (needs torch)
"""
import json
import struct

import torch

torch.manual_seed(7)
net = torch.nn.Sequential(
    torch.nn.Linear(2, 16), torch.nn.SiLU(), torch.nn.Linear(16, 1)
)
state = {k: v.detach().float().contiguous() for k, v in net.state_dict().items()}

header, blobs, offset = {}, [], 0
for name in sorted(state):
    data = state[name].numpy().tobytes()
    header[name] = {
        "dtype": "F32",
        "shape": list(state[name].shape),
        "data_offsets": [offset, offset + len(data)],
    }
    blobs.append(data)
    offset += len(data)
text = json.dumps(header, separators=(",", ":")).encode()
text += b" " * (-len(text) % 8)
with open("mlp_state_dict.safetensors", "wb") as f:
    f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))

net = net.double()
points = [[0.3, -0.7], [1.5, 0.25], [-2.0, 1.0]]
x = torch.tensor(points, dtype=torch.float64, requires_grad=True)
y = net(x).sum(dim=1)
(grad,) = torch.autograd.grad(y.sum(), x)
with open("mlp_reference.json", "w") as f:
    json.dump(
        {"points": points, "energy": y.tolist(), "grad": grad.tolist()}, f, indent=1
    )
