"""Prepare one image: filters side by side with the original, then background removal by alpha matting.

The founding *prepare one image* workflow, headless, on the colour photograph
``skimage.data.astronaut()``:

1. bilateral smoothing, colour saturation, CLAHE (clip limit, tile grid),
   sharpening (unsharp mask: sigma, amount), gamma and gain, each applied to
   the original, and all of them chained, shown side by side with the
   original in one contact sheet. Each operation is told the image is colour
   (``rgb=True``): the bilateral weights use colour distances, CLAHE works on
   lightness, gamma and gain on the brightest channel, so hue is kept, and
   uint8 RGB in gives uint8 RGB out;
2. background removal: a rough mask (what you would paint in a Labels layer)
   becomes a trimap (certain foreground, certain background, an unknown band
   of ``erode_size`` pixels), closed-form alpha matting (PyMatting) finds the
   soft edge, and the subject is composited on white and cut out on a
   transparent background;
3. the original, the background-removed image and the extracted subject
   (cropped to the mask) are saved as PNG, the alpha matte as a float32 TIFF.

Run it::

    python examples/prepare_image.py out/ [--quick]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import imageio.v3 as iio
import numpy as np
from skimage import data, draw

import napari_stacklab as sl

#: Each filter of the chain with the setting shown in the contact sheet.
SETTINGS = {
    "bilateral": {"sigma_spatial": 2.0, "sigma_color": 20.0},
    "saturation": {"factor": 1.6},
    "clahe": {"clip_limit": 0.02, "tile_grid": 8},
    "sharpen": {"radius": 2.0, "amount": 1.5},
    "gamma": {"gamma": 0.7, "vmax": 255.0},
    "gain": {"gain": 1.3},
}


#: The operation of each filter of the chain.
OPERATIONS = {
    "bilateral": sl.filters.bilateral,
    "saturation": sl.filters.adjust_saturation,
    "clahe": sl.filters.clahe,
    "sharpen": sl.filters.unsharp_mask,
    "gamma": sl.filters.adjust_gamma,
    "gain": sl.filters.adjust_gain,
}


def apply_filter(name: str, rgb: np.ndarray) -> np.ndarray:
    """One filter of the chain on a uint8 RGB image; uint8 RGB out (display adjustments keep the type)."""
    params = dict(SETTINGS[name])
    if name == "clahe":
        params["kernel_size"] = max(2, min(rgb.shape[:2]) // params.pop("tile_grid"))
    return np.asarray(OPERATIONS[name](rgb, rgb=True, **params))


def contact_sheet(panels: dict, columns: int = 4, gap: int = 4) -> np.ndarray:
    """Panels (same-size RGB uint8) on a white grid, row by row."""
    height, width = next(iter(panels.values())).shape[:2]
    rows = -(-len(panels) // columns)
    sheet = np.full((rows * (height + gap) - gap, columns * (width + gap) - gap, 3), 255, np.uint8)
    for i, panel in enumerate(panels.values()):
        r, c = divmod(i, columns)
        sheet[r * (height + gap) : r * (height + gap) + height, c * (width + gap) : c * (width + gap) + width] = panel
    return sheet


def rough_mask(shape: tuple) -> np.ndarray:
    """The rough outline of the astronaut a user would paint: head and shoulders, and the suit."""
    n = shape[0]
    mask = np.zeros(shape, np.uint8)
    mask[draw.ellipse(0.42 * n, 0.45 * n, 0.30 * n, 0.22 * n, shape=shape)] = 1
    mask[draw.rectangle((0.55 * n, 0.2 * n), (n - 1, 0.75 * n), shape=shape)] = 1
    return mask


def main(out_dir: str | Path, *, quick: bool = False) -> dict:
    """Run the workflow into ``out_dir``; return ``{"files": {...}, "panels": [...], "result": {...}}``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    original = data.astronaut()
    if quick:
        original = original[::2, ::2]

    # 1. every filter side by side with the original, and the whole chain
    panels = {"original": original}
    chained = original
    for name in SETTINGS:
        panels[name] = apply_filter(name, original)
        chained = apply_filter(name, chained)
    panels["chain"] = chained
    files = {"side_by_side": out / "side_by_side.png"}
    iio.imwrite(files["side_by_side"], contact_sheet(panels))

    # 2. background removal: rough mask -> trimap -> alpha matte -> subject
    erode_size = max(4, original.shape[0] // 32)
    result = sl.matting.remove_background(original, mask=rough_mask(original.shape[:2]), erode_size=erode_size,
                                          min_size=64, new_background="white")
    rows, cols = np.nonzero(result["mask"])
    crop = (slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1))
    subject = sl.matting.extract_subject(original[crop], result["alpha"][crop], background="transparent")

    # 3. save the original, the background-removed image, the subject and the alpha matte
    files.update({
        "original": out / "original.png",
        "background_removed": out / "background_removed.png",
        "subject": out / "subject.png",
        "alpha": out / "alpha.tif",
    })
    iio.imwrite(files["original"], original)
    iio.imwrite(files["background_removed"], result["subject"])
    iio.imwrite(files["subject"], subject)
    sl.io.imwrite(files["alpha"], result["alpha"].astype(np.float32), overwrite=True)
    return {"files": {k: str(v) for k, v in files.items()}, "panels": list(panels), "result": result,
            "crop": crop, "erode_size": erode_size}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", help="folder for the results")
    parser.add_argument("--quick", action="store_true", help="half-size image (for CI)")
    args = parser.parse_args()
    for name, path in main(args.out_dir, quick=args.quick)["files"].items():
        print(f"{name:20s} {path}")
