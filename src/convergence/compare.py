"""Compare two runs of the workflow store by store, in the order of the DAG, to find the first that differs.

Two runs of one commit and config on two machines should give the same stores; when a claim moves
between them, the first store that differs (stimuli, then embeddings, kernels, then the analyses) says
where the numbers parted, and its attrs (``device``, ``threads``, ``cpu_capability``, ``versions``) usually
say why. Stores are compared after aligning every labelled dimension on its labels (so a run whose
models were listed in another order still compares equal); tables after sorting their rows by their
text columns. Usage::

    python -m convergence.compare RUN_A RUN_B [--all]

prints, for every result of RUN_A (``--all``) or up to the first difference, ``same``, ``missing`` or the
largest absolute difference of each variable or column that differs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

#: The stages in the order the DAG builds them; every other folder of results/ comes after, by name.
STAGES = ("stimuli", "embeddings", "embeddings_blocks", "kernels", "kernels_blocks", "lowlevel")


def results(run: str | Path) -> list[str]:
    """Every store (``.zarr``) and table (CSV, JSON) under ``run``/results, figures and caches aside, relative
    to ``run``, in DAG order."""
    run = Path(run)
    found = []
    for path in (run / "results").rglob("*"):
        rel = path.relative_to(run)
        if len(rel.parts) < 3 or rel.parts[1] in ("figures", "manifests", ".cache"):
            continue
        if any(p.endswith(".zarr") for p in rel.parts[:-1]):
            continue
        if path.suffix == ".zarr" or (path.is_file() and path.suffix in (".csv", ".json")):
            found.append(rel.as_posix())

    def order(name: str):
        stage = name.split("/")[1]
        return (STAGES.index(stage) if stage in STAGES else len(STAGES), name)

    return sorted(found, key=order)


def _difference(a: np.ndarray, b: np.ndarray) -> float | str | None:
    """None when equal (NaNs equal), else the largest absolute difference (or 'differs' for non-numbers)."""
    if a.shape != b.shape:
        return f"shape {a.shape} vs {b.shape}"
    if a.dtype.kind in "fc" and b.dtype.kind in "fc":
        if np.array_equal(a, b, equal_nan=True):
            return None
        return float(np.nanmax(np.abs(a.astype(np.float64) - b.astype(np.float64))))
    return None if np.array_equal(a, b) else "differs"


def compare_store(a: Path, b: Path) -> dict:
    """Variable -> difference of two Zarr stores, labelled dimensions aligned on ``a``'s labels."""
    import xarray as xr

    x = xr.open_zarr(a, consolidated=False)
    y = xr.open_zarr(b, consolidated=False)
    out = {}
    labelled = {d: x[d].values for d in x.dims if d in x.coords and d in y.coords and x[d].dtype.kind in "OUST"}
    try:
        y = y.sel(labelled)
    except KeyError as err:
        return {"labels": f"differ ({err})"}
    for name in sorted(set(x.data_vars) | set(y.data_vars)):
        if name not in x.data_vars or name not in y.data_vars:
            out[name] = "missing in one run"
            continue
        diff = _difference(x[name].values, y[name].transpose(*x[name].dims).values)
        if diff is not None:
            out[name] = diff
    return out


def compare_table(a: Path, b: Path) -> dict:
    """Column -> difference of two CSV tables (rows sorted by their text columns), or of two JSON files."""
    if a.suffix == ".json":
        import json

        return {} if json.loads(a.read_text()) == json.loads(b.read_text()) else {"json": "differs"}
    import pandas as pd

    x, y = pd.read_csv(a), pd.read_csv(b)
    if list(x.columns) != list(y.columns) or len(x) != len(y):
        return {"table": f"columns or rows differ ({len(x)} vs {len(y)} rows)"}
    keys = [c for c in x.columns if not pd.api.types.is_numeric_dtype(x[c])]
    if keys:
        x = x.sort_values(keys, kind="stable").reset_index(drop=True)
        y = y.sort_values(keys, kind="stable").reset_index(drop=True)
    out = {}
    for column in x.columns:
        diff = _difference(x[column].to_numpy(), y[column].to_numpy())
        if diff is not None:
            out[column] = diff
    return out


def compare_runs(run_a: str | Path, run_b: str | Path, *, stop_at_first: bool = True) -> list[tuple[str, dict]]:
    """(result, differences) for the results of ``run_a`` in DAG order: an empty dict for an identical one,
    ``{"result": "missing"}`` where ``run_b`` lacks it. With ``stop_at_first``, up to the first that differs."""
    run_a, run_b = Path(run_a), Path(run_b)
    out = []
    for rel in results(run_a):
        other = run_b / rel
        if not other.exists():
            diff = {"result": "missing"}
        elif rel.endswith(".zarr"):
            diff = compare_store(run_a / rel, other)
        else:
            diff = compare_table(run_a / rel, other)
        out.append((rel, diff))
        if diff and stop_at_first:
            break
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_a")
    parser.add_argument("run_b")
    parser.add_argument("--all", action="store_true", help="compare every result, not only up to the first difference")
    args = parser.parse_args(argv)
    rows = compare_runs(args.run_a, args.run_b, stop_at_first=not args.all)
    for rel, diff in rows:
        print(f"{rel}: " + ("same" if not diff else ", ".join(f"{k} {v}" for k, v in diff.items())))
    differing = [rel for rel, diff in rows if diff]
    print(f"first that differs: {differing[0]}" if differing else f"all {len(rows)} results the same")
    return 1 if differing else 0


if __name__ == "__main__":
    raise SystemExit(main())
