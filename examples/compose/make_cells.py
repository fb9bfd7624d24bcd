#!/usr/bin/env python3
"""Writes cells.csv: 2-D points in a 3 x 3 grid of Gaussian clusters.

Attribute `a` is the column (x near -2, 0 or 2), attribute `b` the row
(y near -2, 0 or 2), `cell` = 3a + b the joint label. The cell (a, b) =
HELD is left out entirely: no row has that combination. Deterministic
(Python's Mersenne Twister, seed 7); standard library only.

    python3 examples/compose/make_cells.py > examples/compose/cells.csv
"""
import random
import sys

CENTERS = (-2.0, 0.0, 2.0)
SD = 0.3
PER_CELL = 400
HELD = (2, 2)


def main():
    rng = random.Random(7)
    out = sys.stdout
    out.write("x,y,a,b,cell\n")
    for a in range(3):
        for b in range(3):
            if (a, b) == HELD:
                continue
            for _ in range(PER_CELL):
                x = rng.gauss(CENTERS[a], SD)
                y = rng.gauss(CENTERS[b], SD)
                out.write(f"{x:.6f},{y:.6f},{a},{b},{3 * a + b}\n")


if __name__ == "__main__":
    main()
