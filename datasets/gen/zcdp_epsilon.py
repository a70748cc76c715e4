#!/usr/bin/python3
"""Reference values for asec_noise_zcdp_epsilon() (tests/check_noise.c).

epsilon(rho, delta) = min( rho + 2 sqrt(rho log(1/delta)),            [Bun-Steinke 2016, Prop. 1.3]
                           inf_{alpha > 1} alpha rho + log(1 - 1/alpha)
                               + (log(1/delta) - log(alpha)) / (alpha - 1) )   [CKS20, Cor. 13]

Computed independently of the C code with mpmath (50 digits) and
scipy's bounded Brent search over u = log(alpha - 1).  Run with Debian's
python3 (python3-scipy, python3-mpmath):

    /usr/bin/python3 datasets/gen/zcdp_epsilon.py

and paste the printed table into ZCDP_REF[] in tests/check_noise.c.
"""
import mpmath
from scipy.optimize import minimize_scalar

mpmath.mp.dps = 50

CASES = [(0.5, 1e-5), (0.01, 1e-6), (2.0, 1e-9), (1e-4, 1e-5), (12.5, 1e-3)]


def cks(rho, delta, u):
    a = 1 + mpmath.exp(u)
    return a * rho + mpmath.log(1 - 1 / a) + (mpmath.log(1 / delta) - mpmath.log(a)) / (a - 1)


for rho, delta in CASES:
    rho_m, delta_m = mpmath.mpf(rho), mpmath.mpf(delta)
    simple = rho_m + 2 * mpmath.sqrt(rho_m * mpmath.log(1 / delta_m))
    # A coarse search gives the bracket, Brent refines it, mpmath evaluates.
    grid = [(-20 + 50 * i / 2000.0) for i in range(2001)]
    u0 = min(grid, key=lambda u: float(cks(rho_m, delta_m, u)))
    res = minimize_scalar(lambda u: float(cks(rho_m, delta_m, u)),
                          bounds=(u0 - 0.05, u0 + 0.05), method="bounded",
                          options={"xatol": 1e-13})
    best = min(simple, cks(rho_m, delta_m, res.x))
    print("    {%r, %r, %s}," % (rho, delta, mpmath.nstr(best, 17)))
