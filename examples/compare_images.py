"""Compare a set of images: equalize, segment, align to a base with ECC, inspect similarity heatmaps, save.

The founding *compare a set of images* workflow, headless. The input set is
made from ``skimage.data.camera()``: the base image and three copies with
known affine distortions (rotation, scaling, shear, shift), different
brightness/contrast and blur, written as TIFFs with a pixel size and read
back with :func:`napari_stacklab.io.imread`, as real files would be.

Run it::

    python examples/compare_images.py out/ [--quick]

It writes, in ``out/``: ``inputs/*.tif`` (the generated set), for every image
``<name>_equalized.tif``, ``<name>_mask.tif`` (Otsu threshold) and, for every
non-base image, ``<name>_aligned.tif``, ``<name>_aligned_mask.tif`` and
``<name>_similarity.tif`` (local normalised cross-correlation with the base,
in [-1, 1]: 1 = matches the base), plus ``summary.json`` (the fitted and the
true transforms, similarity before and after alignment).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from skimage import data

import napari_stacklab as sl
from napari_stacklab.register import Transform

PIXEL_SIZE = 0.5  # micrometre: written into the TIFFs and carried to every output
HEATMAP_WINDOW = 15
BASE = 0

#: name -> (fixed -> moving affine about the image centre, gain, offset, blur sigma)
DISTORTIONS = {
    "camera_base": (np.eye(2), 1.0, 0.0, 0.0),
    "camera_rotated": (1.03 * np.array([[np.cos(0.06), -np.sin(0.06)], [np.sin(0.06), np.cos(0.06)]]), 0.5, 20.0, 0.0),
    "camera_sheared": (np.array([[1.0, 0.06], [-0.03, 0.97]]), 1.2, -10.0, 1.5),
    "camera_shifted": (np.array([[0.98, 0.0], [0.0, 1.02]]), 0.8, 60.0, 0.8),
}
SHIFTS = {"camera_base": (0.0, 0.0), "camera_rotated": (4.0, -6.0), "camera_sheared": (-5.0, 3.0),
          "camera_shifted": (7.5, 5.5)}


def true_transform(name: str, shape: tuple) -> Transform:
    """The fixed -> moving transform of image ``name``: its linear part about the centre, then its shift."""
    linear, *_ = DISTORTIONS[name]
    center = (np.asarray(shape, float) - 1) / 2
    matrix = np.eye(3)
    matrix[:2, :2] = linear
    matrix[:2, 2] = center - linear @ center + np.asarray(SHIFTS[name])
    return Transform("affine", matrix)


def make_inputs(folder: Path, *, quick: bool = False, seed: int = 0) -> dict[str, Path]:
    """Write the image set as uint8 TIFFs (pixel size in micrometres); return ``{name: path}``."""
    rng = np.random.default_rng(seed)
    camera = data.camera().astype(np.float32)
    if quick:
        camera = camera[::2, ::2]
    margin = camera.shape[0] // 8  # distort the whole picture, keep its centre: no empty corners
    crop = (slice(margin, -margin), slice(margin, -margin))
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, (_, gain, offset, blur) in DISTORTIONS.items():
        full_truth = true_transform(name, camera.shape)
        moving = sl.register.warp(camera, full_truth.inverse(), order=3, mode="reflect")
        if blur:
            moving = sl.filters.gaussian(moving, sigma=blur)
        moving = gain * moving[crop] + offset + rng.normal(0, 2.0, moving[crop].shape)
        paths[name] = folder / f"{name}.tif"
        sl.io.imwrite(paths[name], np.clip(np.rint(moving), 0, 255).astype(np.uint8),
                      scale=(PIXEL_SIZE, PIXEL_SIZE), units=("um", "um"), axis_labels=("y", "x"), overwrite=True)
    return paths


def cropped_truth(name: str, full_shape: tuple, margin: int) -> Transform:
    """The true fixed -> moving transform in the coordinates of the cropped images."""
    to_full, to_crop = np.eye(3), np.eye(3)
    to_full[:2, 2], to_crop[:2, 2] = margin, -margin
    return Transform("affine", to_crop @ true_transform(name, full_shape).matrix @ to_full)


def main(out_dir: str | Path, *, quick: bool = False) -> dict:
    """Run the whole workflow into ``out_dir``; return a summary (also saved as ``summary.json``)."""
    out = Path(out_dir)
    paths = make_inputs(out / "inputs", quick=quick)

    # 1. open the set (pixel size and units come from the files)
    images = {name: sl.io.imread(path) for name, path in paths.items()}
    names = list(images)
    base_name = names[BASE]
    base_image = images[base_name]

    # 2. equalize brightness, contrast and sharpness to the base image
    equalized = sl.equalize.equalize_set([images[n].data for n in names], reference=BASE, method="meanstd",
                                         sharpness=True)
    equalized = dict(zip(names, equalized))
    sharpness = {n: float(sl.equalize.laplacian_variance(equalized[n])) for n in names}

    # 3. threshold segmentation (Otsu) of every equalized image
    masks = {n: sl.segment.threshold(equalized[n], method="otsu") for n in names}

    def save(name: str, array) -> str:
        path = out / f"{name}.tif"
        sl.io.imwrite(path, base_image.with_data(np.asarray(array), name=name), overwrite=True)
        return str(path)

    files = {}
    for n in names:
        files[f"{n}_equalized"] = save(f"{n}_equalized", equalized[n])
        files[f"{n}_mask"] = save(f"{n}_mask", masks[n].astype(np.uint8))

    # 4. align every image to the base with an affine ECC, 5. similarity heatmaps, 6. save
    fixed = equalized[base_name]
    full_shape = data.camera()[::2, ::2].shape if quick else data.camera().shape
    margin = full_shape[0] // 8
    summary = {"base": base_name, "pixel_size_um": PIXEL_SIZE, "sharpness": sharpness, "images": {}}
    for n in names:
        if n == base_name:
            continue
        transform = sl.register.ecc(fixed, equalized[n], model="affine")
        aligned = sl.register.warp(equalized[n], transform, output_shape=fixed.shape)
        valid = sl.register.warp(np.ones(fixed.shape, np.float32), transform, output_shape=fixed.shape, order=0) > 0
        aligned_mask = sl.register.warp(masks[n].astype(np.uint8), transform, output_shape=fixed.shape, order=0)
        heatmap = sl.register.similarity_map(aligned, reference=fixed, window=HEATMAP_WINDOW)
        heatmap = np.where(valid, heatmap, 0).astype(np.float32)  # no data outside the warped image
        files[f"{n}_aligned"] = save(f"{n}_aligned", aligned)
        files[f"{n}_aligned_mask"] = save(f"{n}_aligned_mask", aligned_mask)
        files[f"{n}_similarity"] = save(f"{n}_similarity", heatmap)
        summary["images"][n] = {
            "transform": transform.matrix.tolist(),
            "true_transform": cropped_truth(n, full_shape, margin).matrix.tolist(),
            "ecc_score": transform.score,
            "similarity_before": sl.register.similarity_score(equalized[n], fixed),
            "similarity_after": sl.register.similarity_score(aligned, fixed, mask=valid),
            "mean_heatmap": float(heatmap[valid].mean()),
        }
    summary["files"] = files
    (out / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return summary


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", help="folder for the generated inputs and the results")
    parser.add_argument("--quick", action="store_true", help="half-size images (for CI)")
    args = parser.parse_args()
    result = main(args.out_dir, quick=args.quick)
    for name, info in result["images"].items():
        print(f"{name}: similarity {info['similarity_before']:.3f} -> {info['similarity_after']:.3f}")
