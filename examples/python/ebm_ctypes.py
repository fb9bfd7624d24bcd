#!/usr/bin/env python3
"""Use an ebm model file from Python through libebmc, with ctypes only.

    python3 examples/python/ebm_ctypes.py MODEL.ebmc ENERGY [--lib PATH] [--ebm PATH]

Opens MODEL.ebmc (built by `ebm build prog.ebm --energy ENERGY -o MODEL.ebmc`)
with the C ABI, lists its definitions and parameters, evaluates ENERGY, its
gradient and Hessian-vector products on a batch of points in f64 (and the
energy in f32), and checks every number against the `ebm` binary
(`ebm eval MODEL.ebmc --energy ENERGY --at ... --grad --hvp ... --json`, one
point per run). When the file has parameters, it also reads one, changes it
through `ebm_model_set_param`, and puts it back. Exits 1 on any mismatch.

libebmc is `--lib`, else $EBM_LIB, else target/release/libebmc.so of this
repository (`cargo build --release -p ebm-capi`); the ebm binary is
`--ebm`, else $EBM_BIN, else target/release/ebm (`cargo build --release`).
"""

import argparse
import ctypes
import json
import math
import os
import subprocess
import sys
from ctypes import POINTER, c_char_p, c_double, c_float, c_int, c_int64, c_size_t, c_uint32, c_void_p

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LIB_NAME = {"darwin": "libebmc.dylib", "win32": "ebmc.dll"}.get(sys.platform, "libebmc.so")


class EbmError(Exception):
    """A call into libebmc failed; the message is the library's."""


def load_library(path):
    """Loads libebmc and declares the signatures this script uses (ebm.h)."""
    lib = ctypes.CDLL(path)
    handle = c_void_p  # ebm_model*, opaque
    err = POINTER(c_void_p)  # char**: kept as a raw pointer so it can be freed
    dp, fp = POINTER(c_double), POINTER(c_float)
    sigs = {
        "ebm_version": (c_char_p, []),
        "ebm_format_version": (c_uint32, []),
        "ebm_free_error": (None, [c_void_p]),
        "ebm_model_open": (handle, [c_char_p, err]),
        "ebm_model_free": (None, [handle]),
        "ebm_model_num_defs": (c_size_t, [handle]),
        "ebm_model_def_name": (c_char_p, [handle, c_size_t]),
        "ebm_model_def_kind": (c_int, [handle, c_size_t]),
        "ebm_model_dim": (c_int64, [handle, c_char_p]),
        "ebm_model_cond_dim": (c_int64, [handle, c_char_p]),
        "ebm_model_num_params": (c_size_t, [handle]),
        "ebm_model_param_name": (c_char_p, [handle, c_size_t]),
        "ebm_model_param_size": (c_int64, [handle, c_char_p]),
        "ebm_model_get_param": (c_int, [handle, c_char_p, dp, c_size_t, err]),
        "ebm_model_set_param": (c_int, [handle, c_char_p, dp, c_size_t, err]),
        "ebm_energy_f64": (c_int, [handle, c_char_p, dp, dp, c_size_t, dp, err]),
        "ebm_grad_f64": (c_int, [handle, c_char_p, dp, dp, c_size_t, dp, dp, err]),
        "ebm_hvp_f64": (c_int, [handle, c_char_p, dp, dp, c_size_t, dp, dp, err]),
        "ebm_energy_f32": (c_int, [handle, c_char_p, fp, fp, c_size_t, fp, err]),
    }
    for name, (restype, argtypes) in sigs.items():
        fn = getattr(lib, name)
        fn.restype = restype
        fn.argtypes = argtypes
    return lib


class Model:
    """An open model file: a thin wrapper that turns error codes into exceptions."""

    def __init__(self, lib, path):
        self.lib = lib
        err = c_void_p()
        self.handle = lib.ebm_model_open(os.fsencode(path), ctypes.byref(err))
        if not self.handle:
            raise EbmError(self._take(err))

    def close(self):
        if self.handle:
            self.lib.ebm_model_free(self.handle)
            self.handle = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _take(self, err):
        """The message behind an error pointer; frees it (the library owns it)."""
        msg = ctypes.cast(err, c_char_p).value.decode()
        self.lib.ebm_free_error(err)
        return msg

    def _call(self, fn, *args):
        err = c_void_p()
        if fn(self.handle, *args, ctypes.byref(err)) != 0:
            raise EbmError(self._take(err))

    def defs(self):
        lib = self.lib
        kinds = {0: "energy", 1: "model"}
        return [
            (lib.ebm_model_def_name(self.handle, i).decode(), kinds[lib.ebm_model_def_kind(self.handle, i)])
            for i in range(lib.ebm_model_num_defs(self.handle))
        ]

    def params(self):
        names = [self.lib.ebm_model_param_name(self.handle, i) for i in range(self.lib.ebm_model_num_params(self.handle))]
        return [(n.decode(), self.lib.ebm_model_param_size(self.handle, n)) for n in names]

    def dims(self, name):
        return self.lib.ebm_model_dim(self.handle, name.encode()), self.lib.ebm_model_cond_dim(self.handle, name.encode())

    def get_param(self, name):
        n = self.lib.ebm_model_param_size(self.handle, name.encode())
        out = (c_double * max(n, 0))()
        self._call(self.lib.ebm_model_get_param, name.encode(), out, len(out))
        return list(out)

    def set_param(self, name, values):
        self._call(self.lib.ebm_model_set_param, name.encode(), (c_double * len(values))(*values), len(values))

    def _batch(self, xs, cs, ctype):
        """Flat ctypes arrays of a batch (a list of points, each a list)."""
        x = (ctype * sum(map(len, xs)))(*[v for p in xs for v in p])
        c = None if cs is None else (ctype * sum(map(len, cs)))(*[v for p in cs for v in p])
        return x, c

    def energy(self, name, xs, cs=None):
        x, c = self._batch(xs, cs, c_double)
        out = (c_double * len(xs))()
        self._call(self.lib.ebm_energy_f64, name.encode(), x, c, len(xs), out)
        return list(out)

    def energy_f32(self, name, xs, cs=None):
        x, c = self._batch(xs, cs, c_float)
        out = (c_float * len(xs))()
        self._call(self.lib.ebm_energy_f32, name.encode(), x, c, len(xs), out)
        return list(out)

    def grad(self, name, xs, cs=None):
        """Energies and gradients (one list per point)."""
        x, c = self._batch(xs, cs, c_double)
        e, g = (c_double * len(xs))(), (c_double * len(x))()
        self._call(self.lib.ebm_grad_f64, name.encode(), x, c, len(xs), e, g)
        d = len(x) // len(xs)
        return list(e), [list(g[i * d : (i + 1) * d]) for i in range(len(xs))]

    def hvp(self, name, xs, vs, cs=None):
        x, c = self._batch(xs, cs, c_double)
        v, _ = self._batch(vs, None, c_double)
        out = (c_double * len(x))()
        self._call(self.lib.ebm_hvp_f64, name.encode(), x, c, len(xs), v, out)
        d = len(x) // len(xs)
        return [list(out[i * d : (i + 1) * d]) for i in range(len(xs))]


def cli_eval(ebm, model, energy, x, c, v):
    """The reference: `ebm eval --json` at one point."""
    vec = lambda p: ",".join(repr(float(a)) for a in p)
    cmd = [ebm, "eval", model, "--energy", energy, f"--at={vec(x)}", "--grad", f"--hvp={vec(v)}", "--json"]
    if c is not None:
        cmd.append(f"--cond={vec(c)}")
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise EbmError(f"{' '.join(cmd)} failed: {out.stderr.strip()}")
    return json.loads(out.stdout)


def close(a, b, rel):
    return math.isfinite(a) and abs(a - b) <= rel * (1.0 + abs(b))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("energy")
    ap.add_argument("--lib", default=os.environ.get("EBM_LIB", os.path.join(ROOT, "target", "release", LIB_NAME)))
    ap.add_argument("--ebm", default=os.environ.get("EBM_BIN", os.path.join(ROOT, "target", "release", "ebm")))
    ap.add_argument("--batch", type=int, default=4)
    args = ap.parse_args()

    lib = load_library(args.lib)
    print(f"libebmc {lib.ebm_version().decode()} (model format {lib.ebm_format_version()}): {args.lib}")
    mismatches = []

    with Model(lib, args.model) as m:
        print("definitions:", ", ".join(f"{n} ({k})" for n, k in m.defs()))
        params = m.params()
        print(f"parameters: {len(params)} tensors, {sum(s for _, s in params)} values")
        dim, cond_dim = m.dims(args.energy)
        if dim < 0:
            sys.exit(f"no definition `{args.energy}` in {args.model}")

        # A deterministic batch of points, directions and (if conditional) inputs.
        xs = [[round(0.37 * (i + 1) * (-1) ** j - 0.15 * j, 6) for j in range(dim)] for i in range(args.batch)]
        vs = [[1.0 if j == i % dim else 0.25 for j in range(dim)] for i in range(args.batch)]
        cs = None
        if cond_dim > 0:
            cs = [[0.5 - 0.3 * ((i + j) % 3) for j in range(cond_dim)] for i in range(args.batch)]

        energies = m.energy(args.energy, xs, cs)
        e, grads = m.grad(args.energy, xs, cs)
        hvps = m.hvp(args.energy, xs, vs, cs)
        e32 = m.energy_f32(args.energy, xs, cs)
        if e != energies:
            mismatches.append(f"ebm_grad_f64's energies {e} differ from ebm_energy_f64's {energies}")

        for i, x in enumerate(xs):
            ref = cli_eval(args.ebm, args.model, args.energy, x, None if cs is None else cs[i], vs[i])
            pairs = [("energy", [e[i]], [ref["energy"]]), ("grad", grads[i], ref["grad"]), ("hvp", hvps[i], ref["hvp"])]
            for what, got, want in pairs:
                if len(got) != len(want) or not all(close(a, b, 1e-10) for a, b in zip(got, want)):
                    mismatches.append(f"point {i} {x}: {what} {got} (libebmc) vs {want} (ebm eval)")
            if not close(e32[i], ref["energy"], 1e-4):
                mismatches.append(f"point {i} {x}: f32 energy {e32[i]} vs {ref['energy']}")
            print(f"  x = {x}: E = {e[i]:.12g}, grad = {[round(g, 12) for g in grads[i]]}")

        # Parameters: a changed value reaches the energy; restoring it restores E.
        if params:
            name = params[0][0]
            old = m.get_param(name)
            m.set_param(name, [2.0 * a + 0.5 for a in old])
            changed = m.energy(args.energy, xs, cs)
            m.set_param(name, old)
            restored = m.energy(args.energy, xs, cs)
            if restored != e:
                mismatches.append(f"restoring {name} did not restore the energies: {restored} vs {e}")
            effect = "changed E" if changed != e else f"left E unchanged ({args.energy} does not read it)"
            print(f"parameter {name}: {len(old)} values; changing it {effect}")

        # Errors come back as messages, not crashes.
        try:
            m.energy("no_such_energy", xs, cs)
            mismatches.append("an unknown energy was accepted")
        except EbmError as err:
            print(f"unknown energy refused: {err}")

    if mismatches:
        print(f"{len(mismatches)} mismatches:", *mismatches, sep="\n  ")
        return 1
    print(f"ok: {args.batch} points agree with `ebm eval`")
    return 0


if __name__ == "__main__":
    sys.exit(main())
