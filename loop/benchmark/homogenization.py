"""`loop benchmark homogenization`: the FFT solver against the shared FANS reference set, its grid
convergence, and Hashin-Shtrikman bounds on random microstructures."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from loop.errors import LoopError
from loop.homogenize import (
    Phase,
    coarsen,
    hashin_shtrikman_conductivity,
    hashin_shtrikman_elastic,
    homogenize,
    voigt_reuss_hill,
)
from loop.microgen import GRFParams, microstructure

__all__ = ["run_homogenization_benchmark", "homogenization_markdown"]


def _reference(path: Path) -> tuple[list[str], list[str]]:
    import h5py

    if not path.is_file():
        raise LoopError(f"reference file {path} not found", "pass the path to random_3d_rve_v02.h5")
    with h5py.File(path, "r") as f:
        if "ms_random" not in f:
            raise LoopError(f"{path} has no group 'ms_random'", "pass random_3d_rve_v02.h5")
        g = f["ms_random"]
        names = sorted(
            (k for k in g if k.startswith("dset") and not k.endswith("_sol")),
            key=lambda k: int(k[4:]),
        )
        temps = sorted(
            k.split("_", 1)[1] for k in g[f"{names[0]}_sol"] if k.startswith("stiffness_")
        )
    return names, temps


def _load(path: Path, name: str, temp: str) -> tuple[np.ndarray, dict[str, Any]]:
    import h5py

    with h5py.File(path, "r") as f:
        img = f[f"ms_random/{name}"][()]
        sol = f[f"ms_random/{name}_sol"]
        attrs = sol[f"conductivity_{temp}"].attrs
        e, nu, k = attrs["elastic_modulus"], attrs["poisson_ratio"], attrs["conductivity"]
        ref = {
            "stiffness": sol[f"stiffness_{temp}"][()],
            "conductivity": sol[f"conductivity_{temp}"][()],
            "phases": (Phase(e[0], nu[0], k[0]), Phase(e[1], nu[1], k[1])),
            "down_scaling": int(sol.attrs["down_scaling"][0]),
        }
    return img, ref


def run_homogenization_benchmark(
    reference: Path,
    *,
    samples: int | None = None,
    grids: Sequence[int] = (16, 32, 64),
    convergence_samples: int = 2,
    max_contrast_for_fine: float = 10.0,
    random_samples: int = 20,
    contrasts: Sequence[float] = (10.0, 50.0),
    device: str = "cpu",
    tol: float = 1e-8,
    speed_grids: Sequence[int] = (32, 64),
    studies: Sequence[str] = ("reference", "convergence", "bounds", "speed"),
    progress: Any = None,
) -> dict[str, Any]:
    """Reproduce the reference, then refine the grid, then check bounds on random samples.

    Args:
        reference: The shared `random_3d_rve_v02.h5`.
        samples: Use only the first N reference RVEs (default all 19).
        grids: Grids for the convergence study (each must divide the 256^3 images).
        convergence_samples: RVEs in the convergence study.
        max_contrast_for_fine: Above this stiffness contrast only the two coarsest grids run
            (the high-contrast solves on 64^3 take many minutes on a CPU).
        random_samples: Random 16^3 microstructures per contrast for the bounds check.
        contrasts: Stiffness (and conductivity) contrasts of the bounds and speed checks.
        speed_grids: Grids of the speed study (a random microstructure, six load cases, to a
            1e-6 residual).
        studies: Which of reference, convergence, bounds, speed to run.
    """
    unknown = sorted(set(studies) - {"reference", "convergence", "bounds", "speed"})
    if unknown:
        raise LoopError(
            f"unknown studies {unknown}", "choose from reference, convergence, bounds, speed"
        )
    names, temps = _reference(reference)
    if samples is not None:
        names = names[:samples]
    say = progress or (lambda msg: None)
    rows: list[dict[str, Any]] = []
    for name in names if "reference" in studies else []:
        for temp in temps:
            img, ref = _load(reference, name, temp)
            grid = np.transpose(coarsen(img, ref["down_scaling"]), (2, 1, 0))
            t = time.perf_counter()
            c = homogenize(grid, ref["phases"], tol=tol, device=device)
            k = homogenize(grid, ref["phases"], "thermal", tol=tol, device=device)
            secs = time.perf_counter() - t
            err = np.diag(c.tensor) / np.diag(ref["stiffness"]) - 1.0
            kerr = np.diag(k.tensor) / np.diag(ref["conductivity"]) - 1.0
            rows.append(
                {
                    "rve": name,
                    "temperature": float(temp),
                    "contrast": ref["phases"][1].youngs_modulus / ref["phases"][0].youngs_modulus,
                    "volume_fraction": float(img.mean()),
                    "ref_diag": np.diag(ref["stiffness"]).tolist(),
                    "diag": np.diag(c.tensor).tolist(),
                    "max_abs_rel_err": float(np.abs(err).max()),
                    "cond_max_abs_rel_err": float(np.abs(kerr).max()),
                    "iterations": c.iterations,
                    "seconds": round(secs, 3),
                }
            )
        say(f"{name}: reproduced at {len(temps)} temperatures")
    conv: list[dict[str, Any]] = []
    for name in names[:convergence_samples] if "convergence" in studies else []:
        for temp in temps:
            img, ref = _load(reference, name, temp)
            contrast = ref["phases"][1].youngs_modulus / ref["phases"][0].youngs_modulus
            for n in grids:
                if n > sorted(grids)[:2][-1] and contrast > max_contrast_for_fine:
                    continue
                if img.shape[0] % n:
                    raise LoopError(f"grid {n} does not divide {img.shape[0]}", "use 16,32,64")
                t = time.perf_counter()
                grid = np.transpose(coarsen(img, img.shape[0] // n), (2, 1, 0))
                c = homogenize(grid, ref["phases"], tol=1e-6, device=device)
                conv.append(
                    {
                        "rve": name,
                        "temperature": float(temp),
                        "contrast": contrast,
                        "grid": n,
                        "diag": np.diag(c.tensor).tolist(),
                        "ref_diag": np.diag(ref["stiffness"]).tolist(),
                        "iterations": c.iterations,
                        "seconds": round(time.perf_counter() - t, 1),
                    }
                )
                say(f"{name} {temp} K on {n}^3: {conv[-1]['seconds']} s")
    bounds: list[dict[str, Any]] = []
    rng = np.random.default_rng(0)
    for contrast in contrasts if "bounds" in studies else []:
        phases = (Phase(1.0, 0.3, 1.0), Phase(contrast, 0.3, contrast))
        inside = inside_k = 0
        for _ in range(random_samples):
            p = GRFParams(
                float(rng.uniform(0.2, 0.6)),
                tuple(float(x) for x in rng.uniform(1.0, 3.0, size=3)),
                float(rng.uniform(0, 180)),
                int(rng.integers(2**31)),
            )
            img = microstructure((16, 16, 16), p)
            f = float(img.mean())
            vrh = voigt_reuss_hill(homogenize(img, phases, tol=1e-6, device=device).tensor)
            hs = hashin_shtrikman_elastic(phases, f)
            inside += (
                hs["bulk_lower"] <= vrh["bulk"] <= hs["bulk_upper"]
                and hs["shear_lower"] <= vrh["shear"] <= hs["shear_upper"]
            )
            kk = homogenize(img, phases, "thermal", tol=1e-6, device=device).tensor
            lo, hi = hashin_shtrikman_conductivity(phases, f, 3)
            inside_k += lo <= np.trace(kk) / 3 <= hi
        bounds.append(
            {
                "contrast": contrast,
                "samples": random_samples,
                "elastic_inside": int(inside),
                "thermal_inside": int(inside_k),
            }
        )
        say(f"contrast {contrast:g}: {inside}/{random_samples} inside the elastic bounds")
    speed: list[dict[str, Any]] = []
    for n in speed_grids if "speed" in studies else []:
        img = microstructure((n, n, n), GRFParams(0.4, (n / 16,) * 3, 0.0, 7))
        for contrast in contrasts:
            phases = (Phase(1.0, 0.3, 1.0), Phase(contrast, 0.3, contrast))
            homogenize(img[:8, :8, :8], phases, device=device)  # warm-up
            t = time.perf_counter()
            res = homogenize(img, phases, tol=1e-6, device=device)
            speed.append(
                {
                    "grid": n,
                    "contrast": contrast,
                    "load_cases": 6,
                    "iterations": res.iterations,
                    "seconds": round(time.perf_counter() - t, 2),
                    "device": device,
                }
            )
            say(f"{n}^3, contrast {contrast:g}: {speed[-1]['seconds']} s")
    return {
        "reference": str(reference),
        "rves": len(names),
        "temperatures": [float(t) for t in temps],
        "rows": rows,
        "convergence": conv,
        "bounds": bounds,
        "speed": speed,
        "device": device,
    }


def homogenization_markdown(doc: dict[str, Any], command: str) -> str:
    """Tables of the three studies."""
    lines = [f"`{command}`", ""]
    if doc["rows"]:
        lines += _reference_table(doc)
    if doc["convergence"]:
        lines += _convergence_table(doc)
    if doc["bounds"]:
        lines += _bounds_table(doc)
    if doc.get("speed"):
        lines += _speed_table(doc)
    return "\n".join(lines) + "\n"


def _reference_table(doc: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    lines += [
        "Reproduction of the reference on its own grid (16^3, volume-averaged voxels, B-bar "
        "hexahedra), over "
        f"{doc['rves']} RVEs:",
        "",
        "| temperature K | stiffness contrast | max rel. error, 6 diagonal stiffness terms | "
        "max rel. error, conductivity | mean CG iterations | mean s per RVE |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for temp in doc["temperatures"]:
        rs = [r for r in doc["rows"] if r["temperature"] == temp]
        lines.append(
            f"| {temp:g} | {np.mean([r['contrast'] for r in rs]):.4g} | "
            f"{max(r['max_abs_rel_err'] for r in rs):.2e} | "
            f"{max(r['cond_max_abs_rel_err'] for r in rs):.2e} | "
            f"{np.mean([r['iterations'] for r in rs]):.0f} | "
            f"{np.mean([r['seconds'] for r in rs]):.2f} |"
        )
    return lines


def _convergence_table(doc: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    lines += [
        "",
        "Grid convergence (the same RVE averaged over 16, 8 and 4 voxels per axis; mean of the "
        "three normal and of the three shear diagonal terms; change against the 16^3 reference):",
        "",
        "| RVE | temperature K | grid | mean C11..C33 | vs reference | mean shear | vs reference "
        "| iterations | s |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for c in doc["convergence"]:
        d, r = np.array(c["diag"]), np.array(c["ref_diag"])
        lines.append(
            f"| {c['rve']} | {c['temperature']:g} | {c['grid']} | {d[:3].mean():.4f} | "
            f"{100 * (d[:3].mean() / r[:3].mean() - 1):+.2f}% | {d[3:].mean():.4f} | "
            f"{100 * (d[3:].mean() / r[3:].mean() - 1):+.2f}% | {c['iterations']} | "
            f"{c['seconds']} |"
        )
    return lines


def _bounds_table(doc: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    lines += [
        "",
        "Hashin-Shtrikman bounds on random 16^3 microstructures (Hill-average bulk and shear "
        "moduli; mean conductivity):",
        "",
        "| contrast | samples | inside elastic bounds | inside conductivity bounds |",
        "| ---: | ---: | ---: | ---: |",
    ]
    for b in doc["bounds"]:
        lines.append(
            f"| {b['contrast']:g} | {b['samples']} | {b['elastic_inside']} | "
            f"{b['thermal_inside']} |"
        )
    return lines


def _speed_table(doc: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    lines += [
        "",
        "Solver speed (a random microstructure, volume fraction 0.4, correlation length n/16; "
        "six load cases solved together to a relative residual of 1e-6, float64):",
        "",
        "| grid | contrast | CG iterations | seconds | device |",
        "| ---: | ---: | ---: | ---: | --- |",
    ]
    for r in doc.get("speed", []):
        lines.append(
            f"| {r['grid']}^3 | {r['contrast']:g} | {r['iterations']} | {r['seconds']} | "
            f"{r['device']} |"
        )
    return lines
