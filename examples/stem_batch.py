"""4D-STEM: open a scan lazily, mean pattern, virtual ADF detector, centre-of-mass maps, recipe, batch.

The founding *4D-STEM* workflow, headless:

1. a few generated scans (:func:`napari_stacklab.datasets.stem4d`, with known
   sample potential and beam deflection) are written as OME-zarr files
   ``scans/scan_<i>.zarr`` and opened lazily with :func:`napari_stacklab.io.imread`
   (dask, whole diffraction patterns per chunk; nothing is read until needed);
2. the mean diffraction pattern locates the direct beam (its centre of mass);
3. an annular dark-field (ADF) detector just outside the bright-field disk
   gives the ADF image of the scan, and the centre of mass of every pattern
   gives the beam-deflection maps ``com_y``/``com_x``;
4. the detector is exported as recipes (``recipe_adf.yaml``,
   ``recipe_com.yaml``: plain YAML, editable by hand);
5. the ADF recipe runs over every scan with the real command line
   (``stacklab run recipe_adf.yaml scans/scan_*.zarr -o cli/``, in a
   subprocess) and both recipes with :func:`napari_stacklab.batch.run_batch`
   (``batch/``); the batch outputs are OME-zarr with the scan's pixel size
   and the recipe recorded in their attributes.

Run it::

    python examples/stem_batch.py out/ [--quick]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

import napari_stacklab as sl

#: ADF detector radii in units of the bright-field disk radius.
ADF_INNER, ADF_OUTER = 1.3, 3.0


def make_scans(folder: Path, *, count: int, scan: int, detector: int) -> list[Path]:
    """Write ``count`` generated scans as OME-zarr (pixel sizes and axis names included)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for seed in range(count):
        path = folder / f"scan_{seed}.zarr"
        sl.io.imwrite(path, sl.datasets.stem4d(seed=seed, scan=scan, detector=detector), overwrite=True)
        paths.append(path)
    return paths


def find_detector(mean_pattern: np.ndarray) -> dict:
    """Direct-beam centre (centre of mass of the mean pattern) and the bright-field disk radius."""
    center = ndi.center_of_mass(mean_pattern)
    disk = mean_pattern > 0.5 * mean_pattern.max()  # the bright-field disk is far brighter than the rest
    radius = float(np.sqrt(disk.sum() / np.pi))
    return {"center": [round(float(c), 2) for c in center], "bf_radius": round(radius, 2)}


def run_cli(recipe: Path, inputs: list[Path], out_dir: Path) -> list[Path]:
    """``stacklab run RECIPE INPUT... -o OUT -q`` in a subprocess (the installed command line)."""
    command = [sys.executable, "-m", "napari_stacklab.cli", "run", str(recipe), *map(str, inputs),
               "-o", str(out_dir), "-q"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"stacklab run failed ({done.returncode}): {done.stderr.strip()}")
    # one line per output: "wrote PATH", or "skipped PATH (already complete)" on a re-run
    return [Path(line.split(" ", 1)[1].removesuffix(" (already complete)"))
            for line in done.stdout.splitlines() if line.startswith(("wrote ", "skipped "))]


def main(out_dir: str | Path, *, quick: bool = False) -> dict:
    """Run the workflow into ``out_dir``; return the in-process results and the batch outputs."""
    out = Path(out_dir)
    scans = make_scans(out / "scans", count=3, scan=16 if quick else 32, detector=32 if quick else 64)

    # 1. open the first scan lazily: a dask array, whole diffraction patterns per chunk
    first = sl.io.imread(scans[0], lazy=True)

    # 2. the mean diffraction pattern (a small result: computed here)
    mean_pattern = np.asarray(sl.stem.mean_pattern(first.data))
    geometry = find_detector(mean_pattern)
    radius = geometry["bf_radius"]
    adf_params = {"inner": round(ADF_INNER * radius, 2), "outer": round(ADF_OUTER * radius, 2),
                  "center": geometry["center"]}

    # 3. virtual ADF image and centre-of-mass (beam deflection) maps, lazily, then computed
    adf = np.asarray(sl.stem.annular_dark_field(first.data, **adf_params))
    com = {k: np.asarray(v) for k, v in sl.stem.center_of_mass(first.data, center=geometry["center"]).items()}

    # 4. export the steps as recipes
    recipes = {
        "adf": sl.Recipe(steps=[{"op": "annular_dark_field", "params": adf_params}]),
        "com": sl.Recipe(steps=[{"op": "center_of_mass", "params": {"center": geometry["center"]}}]),
    }
    recipe_files = {name: recipe.save(out / f"recipe_{name}.yaml", overwrite=True) for name, recipe in recipes.items()}

    # 5. batch: the command line in a subprocess, and run_batch in this process
    cli_outputs = run_cli(recipe_files["adf"], scans, out / "cli")
    batch_outputs = {
        name: sl.batch.run_batch(recipe_files[name], scans, out / "batch", progress=False) for name in recipes
    }
    return {
        "scans": scans,
        "first": first,
        "mean_pattern": mean_pattern,
        "geometry": geometry,
        "adf_params": adf_params,
        "adf": adf,
        "com": com,
        "recipes": recipe_files,
        "cli_outputs": cli_outputs,
        "batch_outputs": batch_outputs,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", help="folder for the generated scans, recipes and results")
    parser.add_argument("--quick", action="store_true", help="small scans (for CI)")
    args = parser.parse_args()
    result = main(args.out_dir, quick=args.quick)
    print("detector:", result["adf_params"])
    for path in [*result["cli_outputs"], *(p for paths in result["batch_outputs"].values() for p in paths)]:
        print(path)
