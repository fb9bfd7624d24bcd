#!/usr/bin/env python3
"""Writes the two series of this folder (standard library only, seeded):

arma.csv   ARMA(1,1): y_t = mu + phi*y_{t-1} + e_t + theta*e_{t-1},
           e_t ~ N(0, sigma^2), mu = 0.5, phi = 0.6, theta = 0.3, sigma = 0.8
garch.csv  GARCH(1,1): r_t = sqrt(h_t)*z_t, z_t ~ N(0, 1),
           h_t = omega + alpha*r_{t-1}^2 + beta*h_{t-1},
           omega = 0.1, alpha = 0.15, beta = 0.75

T = 200 kept points each, after a burn-in of 500 that is dropped (so the
series starts near its stationary distribution). Run: python3 generate.py
"""

import math
import random

T, BURN = 200, 500


def arma(rng):
    mu, phi, theta, sigma = 0.5, 0.6, 0.3, 0.8
    y_prev = mu / (1 - phi)
    e_prev = 0.0
    out = []
    for _ in range(BURN + T):
        e = rng.gauss(0.0, sigma)
        y = mu + phi * y_prev + e + theta * e_prev
        out.append(y)
        y_prev, e_prev = y, e
    return out[BURN:]


def garch(rng):
    omega, alpha, beta = 0.1, 0.15, 0.75
    h = omega / (1 - alpha - beta)
    r_prev = 0.0
    out = []
    for _ in range(BURN + T):
        h = omega + alpha * r_prev**2 + beta * h
        r = math.sqrt(h) * rng.gauss(0.0, 1.0)
        out.append(r)
        r_prev = r
    return out[BURN:]


def write(path, name, values):
    with open(path, "w") as f:
        f.write(name + "\n")
        for v in values:
            f.write(f"{v:.10f}\n")


if __name__ == "__main__":
    write("arma.csv", "y", arma(random.Random(20240601)))
    write("garch.csv", "r", garch(random.Random(20240602)))
