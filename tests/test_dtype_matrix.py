"""Every registry operation against every dtype, and against NaN, inf, constant and all-zero images.

For each operation a minimal valid call is built from its declaration: the
defaults, the same image for a required reference/template, a small boolean
mask for a required mask; the input is a 2-D image, an RGB image
(``adjust_saturation``), a stack of frames (``frame_ndim=3`` stack operations)
or a 3 x 3 scan of 16 x 16 patterns (4D-STEM operations). Each call must give
the documented output dtype (``op.dtype_for``) or raise a clear
TypeError/ValueError (an error of the project's own, or one whose message says
what is wrong) -- never another exception from deep inside SciPy, never a
non-finite result from finite input, never a silent integer wrap-around.
"""

from __future__ import annotations

import subprocess
import sys
import traceback
import warnings

import numpy as np
import pytest
from _opcases import BASE
from _opcases import minimal_image as _image
from _opcases import minimal_params as _params

from napari_stacklab import catalog

OPS = catalog.operations()
DTYPES = [
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float16", "float32", "float64", ">u2", ">i4", ">f4", ">f8",
]
COMPLEX = ["complex64", "complex128"]

#: (operation, case) -> why it fails today; each is xfail(strict=True) so a fix shows up.
#: Empty: the bugs found here (issue 9) are fixed, each with a regression test in its family's test file.
KNOWN: dict[tuple[str, str], str] = {}


def _arrays(result) -> dict:
    outputs = result if isinstance(result, dict) else {"": result}
    return {key: np.asarray(value) for key, value in outputs.items() if hasattr(value, "dtype")}


def _clear(exc: BaseException, op) -> bool:
    """Raised by the project's own code, or a TypeError/ValueError whose message says what is wrong."""
    frames = traceback.extract_tb(exc.__traceback__)
    ours = "napari_stacklab" in frames[-1].filename
    if ours:
        return True
    words = ["image", "dtype", "mask", "labels", "range", "classes"] + [p.name for p in op.params]
    return isinstance(exc, (TypeError, ValueError)) and any(w in str(exc) for w in words)


def _call(op, image):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return op.func(image, **_params(op, image))


def _check_call(op, dtype: str, image) -> dict | None:
    """The result's arrays, or None for a clear refusal; fails on anything else."""
    try:
        result = _call(op, image)
    except Exception as exc:  # noqa: BLE001 - the kind of error is what is tested
        assert _clear(exc, op), f"{op.name}({dtype}): unclear {type(exc).__name__}: {exc}"
        return None
    arrays = _arrays(result)
    if op.output in ("image", "labels", "mask"):
        expected = op.dtype_for(image.dtype, op.bind(_params(op, image)))
        (out,) = arrays.values()
        assert out.dtype == expected, f"{op.name}({dtype}) gave {out.dtype}, documented {expected}"
    if op.output == "labels":
        assert arrays[""].dtype.kind in "iub", f"{op.name}({dtype}): labels must be integers (or a bool mask)"
    return arrays


def _xfail_known(op_name: str, case: str) -> None:
    if (op_name, case) in KNOWN:
        pytest.xfail(KNOWN[(op_name, case)])


@pytest.mark.parametrize("op", OPS, ids=lambda op: op.name)
def test_every_dtype_gives_the_documented_dtype_or_a_clear_error(op):
    dtypes = DTYPES + (COMPLEX if op.allow_complex else [])
    reference = None
    refused = []
    for dtype in dtypes:
        if (op.name, dtype) in KNOWN:
            continue
        arrays = _check_call(op, dtype, _image(op, dtype))
        if arrays is None:
            refused.append(dtype)
            continue
        for key, out in arrays.items():
            if out.dtype.kind in "fc" and dtype not in COMPLEX:
                assert np.all(np.isfinite(out)), f"{op.name}({dtype})[{key}]: non-finite output from finite input"
        if dtype == "float64":
            reference = arrays
    # the same values in a narrow integer type give the same answer as in float64: no wrap-around
    if reference is not None and op.output in ("image", "labels", "mask") and "uint8" not in refused:
        narrow = _arrays(_call(op, _image(op, "uint8")))[""].astype(np.float64)
        wide = reference[""].astype(np.float64)
        if narrow.shape == wide.shape and op.output == "image":
            scale = max(float(np.abs(wide).max()), 1.0)
            assert float(np.abs(narrow - wide).max()) <= 0.05 * scale, f"{op.name}: uint8 and float64 results differ"
        elif narrow.shape == wide.shape and op.output == "mask":
            # thresholds found from uint8 and float histograms may differ by a bin
            _xfail_known(op.name, "uint8 vs float64")
            assert np.mean(narrow != wide) <= 0.05, f"{op.name}: uint8 and float64 masks/labels differ"
    assert len(refused) < len(dtypes), f"{op.name} refuses every dtype: the minimal call is wrong"


@pytest.mark.parametrize("op", [op for op in OPS if op.name == "find_peaks"], ids=lambda op: op.name)
def test_find_peaks_accepts_bool(op):
    _xfail_known(op.name, "bool")
    assert len(_check_call(op, "bool", _image(op, "bool"))[""]) > 0


def test_inpaint_non_bool_mask_is_refused_clearly():
    op = catalog.get("inpaint")
    _xfail_known("inpaint", "non-bool mask")
    image = BASE.astype(np.float32)
    with pytest.raises((TypeError, ValueError), match="mask"):
        op.func(image, mask=image)


def _special(kind: str, image: np.ndarray) -> np.ndarray:
    image = image.astype(np.float64)
    if kind == "nan":
        image.flat[5] = np.nan
    elif kind == "inf":
        image.flat[5] = np.inf
    elif kind == "const":
        image[...] = 7.0
    else:
        image[...] = 0.0
    return image


@pytest.mark.parametrize("kind", ["nan", "inf", "const", "zero"])
@pytest.mark.parametrize("op", OPS, ids=lambda op: op.name)
def test_special_images(op, kind):
    """NaN/inf pixels: no crash; constant and all-zero images: finite output or a clear refusal."""
    _xfail_known(op.name, kind)
    image = _special(kind, _image(op, "float64"))
    try:
        result = _call(op, image)
    except Exception as exc:  # noqa: BLE001
        assert _clear(exc, op), f"{op.name}({kind}): unclear {type(exc).__name__}: {exc}"
        return
    for key, out in _arrays(result).items():
        if kind in ("const", "zero") and out.dtype.kind in "fc":
            assert np.all(np.isfinite(out)), f"{op.name}({kind})[{key}]: non-finite output"


def test_unwrap_with_a_nan_pixel_returns():
    """Run in a subprocess, killed after 10 s: it once never returned (skimage loops on NaN)."""
    code = (
        "import numpy as np, napari_stacklab as sl\n"
        "a = np.random.default_rng(0).uniform(-3, 3, (48, 48)); a[3, 3] = np.nan\n"
        "try:\n    sl.phase.unwrap(a)\nexcept (TypeError, ValueError):\n    pass\n"
    )
    try:
        done = subprocess.run([sys.executable, "-c", code], check=False, timeout=10, capture_output=True)
    except subprocess.TimeoutExpired:
        pytest.fail("phase.unwrap hangs on a NaN pixel")
    assert done.returncode == 0


def test_float16_and_big_endian_are_computed_natively():
    """Registry-level promotion: float16 -> float32 (SciPy's rank filters refuse float16), big-endian -> native."""
    median = catalog.get("median")
    half = BASE.astype(np.float16)
    assert median.func(half).dtype == np.float32 == median.dtype_for(np.float16, {})
    big = BASE.astype(">u2")
    out = median.func(big)
    assert out.dtype == np.dtype("uint16") and out.dtype.isnative
    np.testing.assert_array_equal(out, median.func(BASE.astype(np.uint16)))
    import dask.array as da

    lazy = median.func(da.from_array(big, chunks=(20, 30)))
    assert lazy.dtype == np.dtype("uint16") and lazy.compute().dtype == np.dtype("uint16")
