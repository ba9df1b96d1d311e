"""Colour and channel axes: every registry operation follows its declared colour policy.

Each operation runs on an RGB uint8 image, an RGBA uint8 image and a
3-channel float stack with a ``c`` axis (``channel_axis=0``), built from the
minimal valid call of tests/_opcases.py. What must hold depends on the
declared policy (``op.channels``) and the kind of axis:

- per channel (and luminance/colour ops on a non-colour ``c`` axis): the result
  equals the operation applied to each channel alone, put back on the channel
  axis (points get the channel as a coordinate, tables a ``channel`` column,
  values come one per channel); changing one channel changes no other
  channel's result (no mixing);
- luminance on colour: the result equals the operation on the Rec. 709
  luminance and has no channel axis;
- colour: the colour axis is kept, a grey colour image (R = G = B) stays grey
  (no colour cast), an alpha channel is put back, display adjustments keep
  uint8;
- native: a registration moves every channel alike (identical channels give
  identical results, equal to the grey run); saturation takes colour only;
- refused: a ValueError that names the operation.

Whatever the operation, nothing raises anything but that clear refusal, or
the very error the operation gives for one channel alone.
"""

from __future__ import annotations

import subprocess
import sys
import warnings

import dask.array as da
import numpy as np
import pytest
import tifffile
from _opcases import BASE, minimal_params
from skimage import color, data, filters, restoration

import napari_stacklab as sl
from napari_stacklab import catalog
from napari_stacklab.channels import POLICIES, Channels, find_channels, luminance, treatment
from napari_stacklab.recipe import Recipe

OPS = catalog.operations()
KINDS = ("rgb", "rgba", "c")


# --- inputs ---------------------------------------------------------------------------------------
def _grey(op) -> np.ndarray:
    """One channel of the operation's minimal input (float64 values 0..85)."""
    if op.family == "stem":
        return np.stack([np.stack([BASE[:16, :16]] * 3)] * 3)
    if op.frame_ndim == 3 and op.name != "adjust_saturation":  # a stack is one frame (drift, alignment)
        return np.stack([BASE, np.roll(BASE, 1, 0), np.roll(BASE, 2, 1)])
    return BASE


def _variants(grey: np.ndarray) -> list[np.ndarray]:
    """Three different channels with the same shape."""
    return [grey, np.flip(grey, axis=-2), np.swapaxes(grey, -1, -2)]


def _channel_image(grey: np.ndarray, kind: str, same: bool = False) -> tuple[np.ndarray, dict]:
    """The image and its channel keywords: RGB / RGBA uint8 (channel last) or a float c stack (axis 0)."""
    channels = [grey] * 3 if same else _variants(grey)
    if kind == "c":
        return np.stack(channels, axis=0).astype(np.float32), {"channel_axis": 0}
    stacked = [(3 * c).astype(np.uint8) for c in channels]  # 0..255
    if kind == "rgba":
        ramp = np.linspace(40, 250, grey.shape[-1]).astype(np.uint8)
        stacked.append(np.broadcast_to(ramp, grey.shape).copy())
    return np.stack(stacked, axis=-1), {"rgb": True}


def _params(op, image, kind):
    """The minimal call's parameters, made for one channel of ``image`` (shared by every channel)."""
    axis = 0 if kind == "c" else -1
    return minimal_params(op, np.take(image, 0, axis=axis))


def _quiet(func, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return func(*args, **kwargs)


# --- what the policies promise ----------------------------------------------------------------------
def _in_uint8(values):
    return np.clip(np.rint(np.asarray(values, dtype=np.float64)), 0, 255).astype(np.uint8)


def _joined(op, results, axis, ndim, names):
    first = results[0]
    if op.output in ("image", "labels", "mask"):
        return np.stack([np.asarray(r) for r in results], axis=axis)
    if op.output == "images":
        return {key: np.stack([np.asarray(r[key]) for r in results], axis=axis) for key in first}
    if op.output == "value":
        return np.asarray(results)
    if op.output == "points":
        return np.concatenate([np.insert(np.asarray(p, np.float64), axis % ndim, c, axis=1) for c, p in enumerate(results)])
    if op.output == "table":
        rows = [len(next(iter(t.values()))) for t in results]
        table = {"channel": np.concatenate([np.full(n, name) for n, name in zip(rows, names)])}
        table.update({key: np.concatenate([np.asarray(t[key]) for t in results]) for key in first})
        return table
    raise AssertionError(f"{op.name}: no per-channel rule for output {op.output!r}")


def _assert_same(op, got, expected, what):
    if isinstance(expected, dict):
        assert isinstance(got, dict) and list(got) == list(expected), f"{op.name} {what}: keys {list(got)}"
        for key in expected:
            _assert_same(op, got[key], expected[key], f"{what}[{key}]")
        return
    got, expected = np.asarray(got), np.asarray(expected)
    assert got.shape == expected.shape, f"{op.name} {what}: shape {got.shape}, expected {expected.shape}"
    assert got.dtype == expected.dtype or got.dtype.kind == expected.dtype.kind == "f", (
        f"{op.name} {what}: dtype {got.dtype}, expected {expected.dtype}")
    if expected.dtype.kind in "fc":
        finite = np.abs(expected[np.isfinite(expected)])
        scale = max(float(finite.max()) if finite.size else 0.0, 1.0)
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5 * scale, err_msg=f"{op.name} {what}")
    else:
        np.testing.assert_array_equal(got, expected, err_msg=f"{op.name} {what}")


def _run(op, image, keywords, params):
    return _quiet(op.func, image, **keywords, **params)


def _per_channel_oracle(op, image, kind, params, ndim_axis):
    axis = 0 if kind == "c" else -1
    results = [_run(op, np.take(image, c, axis=axis), {}, params) for c in range(image.shape[axis])]
    if op.display_adjustment and kind != "c":
        results = [_in_uint8(r) for r in results]
    names = Channels(axis, rgb=kind != "c").names_for(image.shape[axis])
    return _joined(op, results, axis, ndim_axis, names)


def _check_split(op, image, kind, keywords, params):
    expected = _per_channel_oracle(op, image, kind, params, image.ndim)
    got = _run(op, image, keywords, params)
    _assert_same(op, got, expected, f"{kind} per channel")
    if kind == "c" and op.output in ("image", "labels", "mask"):  # change the last channel: the others stay
        changed = image.copy()
        changed[-1] = np.flip(changed[-1], axis=-1) + 7
        again = np.asarray(_run(op, changed, keywords, params))
        _assert_same(op, again[:-1], np.asarray(got)[:-1], "channels 0-1 after changing channel 2")


def _check_grey(op, image, kind, keywords, params):
    got = _run(op, image, keywords, params)
    expected = _run(op, luminance(image, -1), {}, params)
    _assert_same(op, got, expected, f"{kind} on luminance")
    if op.output in ("image", "labels", "mask"):
        assert np.asarray(got).ndim == image.ndim - 1, f"{op.name}: a luminance result has no colour axis"


def _check_colour(op, grey, kind, keywords, params):
    image, _ = _channel_image(grey, kind)
    got = np.asarray(_run(op, image, keywords, params))
    assert got.shape == image.shape, f"{op.name}: colour kept, shape {got.shape}"
    if op.display_adjustment:
        assert got.dtype == np.uint8, f"{op.name}: uint8 colour in, uint8 colour out; got {got.dtype}"
    if kind == "rgba":
        alpha = image[..., 3] if op.display_adjustment else image[..., 3] / 255.0
        np.testing.assert_allclose(got[..., 3], alpha, rtol=1e-6, err_msg=f"{op.name}: alpha put back")
    neutral, _ = _channel_image(grey, kind, same=True)
    out = np.asarray(_run(op, neutral, keywords, params), dtype=np.float64)
    scale = max(float(np.abs(out[..., :3]).max()), 1.0)
    for c in (1, 2):  # a grey colour image gets no colour cast
        np.testing.assert_allclose(out[..., c], out[..., 0], atol=0.01 * scale + 1.0,
                                   err_msg=f"{op.name}: grey in, grey out")


def _check_native(op, grey, kind, keywords, params):
    if op.name == "adjust_saturation":
        image, _ = _channel_image(grey, kind)
        if kind == "c":
            with pytest.raises(ValueError, match="adjust_saturation"):
                _run(op, image, keywords, params)
            return
        got = np.asarray(_run(op, image, keywords, params))
        assert got.shape == image.shape and got.dtype == np.uint8
        return
    axis = 0 if kind == "c" else -1
    if op.output == "images":  # background removal: mask and matte are spatial, the subject keeps the channel axis
        image, _ = _channel_image(grey, kind)
        got = _run(op, image, keywords, params)
        alone = _run(op, np.moveaxis(image, axis, -1), {}, params)  # the same colour frame, channels last
        assert got["mask"].shape == grey.shape and got["alpha"].shape == grey.shape
        for key in alone:
            _assert_same(op, np.moveaxis(got[key], axis, -1) if key == "subject" else got[key], alone[key], key)
        return
    same, _ = _channel_image(grey, kind, same=True)  # identical channels: every channel moves alike
    got = np.asarray(_run(op, same, keywords, params))
    assert got.shape == same.shape, f"{op.name}: channels kept"
    for c in (1, 2):
        np.testing.assert_array_equal(np.take(got, c, axis=axis), np.take(got, 0, axis=axis),
                                      err_msg=f"{op.name}: channel {c} moved as channel 0")
    alone = np.asarray(_run(op, np.take(same, 0, axis=axis), {}, params))
    inner = (Ellipsis, slice(3, -3), slice(3, -3))  # the border takes in zeros where a sub-pixel estimate differs
    np.testing.assert_allclose(np.take(got, 0, axis=axis)[inner], alone[inner], atol=0.02 * alone.max(),
                               err_msg=f"{op.name}: channels moved as the grey image")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("op", OPS, ids=lambda op: op.name)
def test_every_operation_follows_its_colour_policy(op, kind):
    assert op.channels in POLICIES
    grey = _grey(op)
    image, keywords = _channel_image(grey, kind)
    params = _params(op, image, kind)
    how = treatment(op.channels, Channels(0 if kind == "c" else -1, rgb=kind != "c"))
    if how == "refused":
        with pytest.raises(ValueError, match=rf"^{op.name} refuses"):
            _run(op, image, keywords, params)
        return
    try:  # an operation that refuses one channel alone must refuse the channels with the same error
        _per_channel_oracle(op, image, kind, params, image.ndim) if how == "split" else None
    except (TypeError, ValueError) as exc:
        with pytest.raises(type(exc), match=str(exc)[:40].replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
            _run(op, image, keywords, params)
        return
    {"split": _check_split, "grey": _check_grey}.get(how, lambda *a: None)(op, image, kind, keywords, params)
    if how == "colour":
        _check_colour(op, grey, kind, keywords, params)
    if how == "native":
        _check_native(op, grey, kind, keywords, params)


# --- the spine: signatures, axes, validation ---------------------------------------------------------
@pytest.mark.parametrize("op", OPS, ids=lambda op: op.name)
def test_every_operation_takes_channel_axis_and_rgb(op):
    import inspect

    parameters = inspect.signature(op.func).parameters
    assert parameters["channel_axis"].default is None and parameters["rgb"].default is False
    assert not {"channel_axis", "rgb"} & {p.name for p in op.params}, "the channel axis is not a recorded parameter"


def test_gaussian_on_colour_equals_scikit_image_with_channel_axis():
    astronaut = data.astronaut()[::2, ::2]
    ours = sl.filters.gaussian(astronaut, sigma=2.0, rgb=True)
    theirs = filters.gaussian(astronaut, sigma=2.0, channel_axis=-1, preserve_range=True, mode="reflect")
    np.testing.assert_allclose(ours, theirs, atol=1e-3)
    # without a channel axis the colour axis would be smoothed as space: the regression of issue 15
    assert np.abs(sl.filters.gaussian(astronaut, sigma=2.0) - theirs).max() > 20


def test_channel_keywords_are_validated_with_their_names():
    image = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match="channel_axis 3 is out of range"):
        sl.filters.gaussian(image, channel_axis=3)
    with pytest.raises(ValueError, match="rgb=True needs 3 .* got 5"):
        sl.filters.gaussian(np.zeros((8, 8, 5)), rgb=True)
    with pytest.raises(TypeError, match="channel_axis must be an integer"):
        sl.filters.gaussian(image, channel_axis=1.0)
    with pytest.raises(TypeError, match="rgb must be True or False"):
        sl.filters.gaussian(image, rgb="yes")


def test_axis_labels_name_the_channel_axis():
    assert find_channels(("y", "x", "s"), (4, 4, 3)) == Channels(-1, rgb=True)
    assert find_channels(("y", "x", "s"), (4, 4, 2)) == Channels(-1)  # two samples: channels, not colour
    assert find_channels(("t", "c", "y", "x"), (2, 5, 4, 4)) == Channels(-3)
    assert find_channels(("z", "y", "x"), (2, 4, 4)) is None
    image = sl.io.Image(np.zeros((2, 4, 4)), axis_labels=("c", "y", "x"), metadata={"channel_names": ["DAPI", "GFP"]})
    assert image.channel_axis == 0 and not image.rgb and image.channels.names == ("DAPI", "GFP")
    assert sl.io.Image(np.zeros((4, 4, 3), np.uint8), axis_labels=("y", "x", "s")).rgb


def test_a_lazy_input_stays_lazy_through_every_kind_of_channel_run():
    astronaut = data.astronaut()[::4, ::4]
    lazy = da.from_array(astronaut, chunks=(64, 64, 1))  # channels in separate chunks
    for func, params in [(sl.filters.gaussian, {"sigma": 1.0}), (sl.segment.threshold, {}),
                         (sl.filters.clahe, {}), (sl.filters.adjust_saturation, {"factor": 1.5})]:
        out = func(lazy, rgb=True, **params)
        assert isinstance(out, da.Array), func.__name__
        np.testing.assert_array_equal(out.compute(), func(astronaut, rgb=True, **params))


def test_per_channel_statistics_are_each_channels_own():
    """A threshold on a fluorescence stack: Otsu of each channel, not of the pooled pixels."""
    rng = np.random.default_rng(0)
    dim = rng.normal(10, 1, (64, 64)); dim[20:40, 20:40] += 10
    bright = rng.normal(1000, 30, (64, 64)); bright[:, :32] += 1000
    masks = sl.segment.threshold(np.stack([dim, bright]), channel_axis=0)
    assert masks.shape == (2, 64, 64)
    np.testing.assert_array_equal(masks[0], sl.segment.threshold(dim))
    np.testing.assert_array_equal(masks[1], sl.segment.threshold(bright))
    assert masks[0].sum() == pytest.approx(400, abs=20)


def test_resolved_once_per_channel_then_run_equals_one_call():
    """The widget path: bind with the layer's channels, resolve once (per channel), run planes with it."""
    op = catalog.get("rescale_percentile")
    stack = np.stack([BASE, 10 * BASE + 100]).astype(np.float32)
    bound = op.bind({"low": 5, "high": 95}, channels=Channels(0))
    resolved = op.resolve(stack, bound)
    assert resolved.resolved and len(resolved.parts) == 2
    assert [part["vmin"] for part in resolved.parts] == [pytest.approx(np.percentile(c, 5), rel=1e-3) for c in stack]
    np.testing.assert_array_equal(sl.engine.run(op, stack, resolved),
                                  op.func(stack, low=5, high=95, channel_axis=0))


# --- colour operations ---------------------------------------------------------------------------
def _suit():
    """The astronaut's orange suit: strongly saturated red-orange pixels."""
    astronaut = data.astronaut()
    hsv = color.rgb2hsv(astronaut)
    return astronaut, (hsv[..., 0] < 0.08) & (hsv[..., 1] > 0.45) & (hsv[..., 2] > 0.35)


def _hue_change(before, after, where) -> np.ndarray:
    """Per pixel hue change in degrees (HSV hue, wrapped to [-180, 180))."""
    turn = color.rgb2hsv(after)[..., 0][where] - color.rgb2hsv(before)[..., 0][where]
    return np.degrees(np.angle(np.exp(2j * np.pi * turn)))


#: The Prepare tool's chain (its operations in its order) with the tutorial's settings (examples/prepare_image.py).
PREPARE_CHAIN = [
    ("bilateral", {"sigma_spatial": 2.0, "sigma_color": 20.0}),
    ("adjust_saturation", {"factor": 1.6}),
    ("clahe", {"clip_limit": 0.02, "kernel_size": 512 // 8}),
    ("unsharp_mask", {"radius": 2.0, "amount": 1.5}),
    ("adjust_gamma", {"gamma": 0.7, "vmax": 255.0}),
    ("adjust_gain", {"gain": 1.3}),
]


def test_prepare_chain_on_astronaut_keeps_the_suit_hue_and_uint8_rgb():
    astronaut, suit = _suit()
    assert suit.sum() > 20000
    prepared = astronaut
    for name, params in PREPARE_CHAIN:
        alone = catalog.get(name)(astronaut, rgb=True, **params)
        assert alone.dtype == np.uint8 and alone.shape == astronaut.shape, name
        assert abs(np.median(_hue_change(astronaut, alone, suit))) < 3, name
        prepared = catalog.get(name)(prepared, rgb=True, **params)
    assert prepared.dtype == np.uint8 and prepared.shape == astronaut.shape
    change = _hue_change(astronaut, prepared, suit)
    assert abs(np.mean(change)) < 10 and np.median(np.abs(change)) < 10
    # and the chain did something: more colourful and more local contrast
    assert color.rgb2hsv(prepared)[..., 1][suit].mean() > color.rgb2hsv(astronaut)[..., 1][suit].mean() + 0.05


def test_clahe_on_colour_equalises_lightness_and_keeps_the_suit_orange():
    """Issue 15: CLAHE per channel turned the suit (168, 76, 77) grey-blue (96, 93, 112), float -0.42..1.44."""
    astronaut, suit = _suit()
    out = sl.filters.clahe(astronaut, rgb=True, clip_limit=0.02)
    assert out.dtype == np.uint8
    assert np.median(np.abs(_hue_change(astronaut, out, suit))) < 5
    red, green, blue = out[suit].mean(axis=0)
    assert red > 1.5 * green and red > 1.5 * blue
    lab_in, lab_out = color.rgb2lab(astronaut), color.rgb2lab(out)
    oracle = 100 * np.clip(np.asarray(_quiet(
        __import__("skimage.exposure", fromlist=["x"]).equalize_adapthist, lab_in[..., 0] / 100, clip_limit=0.02)), 0, 1)
    inside = (lab_out[..., 0] > 5) & (lab_out[..., 0] < 95)
    assert np.median(np.abs(lab_out[..., 0] - oracle)[inside]) < 1.0  # the lightness is CLAHE's
    np.testing.assert_allclose(np.median(np.hypot(*np.moveaxis(lab_out[..., 1:][suit], -1, 0))),
                               np.median(np.hypot(*np.moveaxis(lab_in[..., 1:][suit], -1, 0))), rtol=0.15)


def test_display_adjustments_on_uint8_colour_clip_and_keep_the_type():
    astronaut = data.astronaut()[::4, ::4]
    bright = sl.filters.adjust_gain(astronaut, gain=3.0, rgb=True)
    assert bright.dtype == np.uint8 and bright.max() == 255
    sharp = sl.filters.unsharp_mask(astronaut, radius=2, amount=5, rgb=True)
    expected = np.clip(np.rint(np.stack([sl.filters.unsharp_mask(astronaut[..., c], radius=2, amount=5)
                                         for c in range(3)], -1)), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(sharp, expected)
    # on grey counts the scale is kept: float32, the frame's range, never [0, 1]
    counts = (data.camera().astype(np.uint16) * 40 + 500)
    for func in (sl.filters.clahe, sl.filters.adjust_log, sl.filters.adjust_gamma):
        out = func(counts)
        assert out.dtype == np.float32 and out.max() > 5000, func.__name__


def test_bilateral_on_colour_weighs_colour_distances():
    """One weight for the three channels (scikit-image's colour bilateral): an edge between colours stays."""
    red, green = np.array([200.0, 40, 40]), np.array([40.0, 120, 40])  # near-equal luminance
    image = np.zeros((32, 32, 3), np.float32)
    image[:, :16], image[:, 16:] = red, green
    image += np.random.default_rng(0).normal(0, 3, image.shape).astype(np.float32)
    out = sl.filters.bilateral(image, sigma_spatial=3, sigma_color=20, mode="edge", rgb=True)
    low, span = float(image.min()), float(np.ptp(image))
    theirs = restoration.denoise_bilateral((image - low) / span, sigma_color=20 / span, sigma_spatial=3,
                                           channel_axis=-1, mode="edge")
    np.testing.assert_allclose(out, theirs * span + low, atol=1e-3)
    np.testing.assert_allclose(out[:, 12].mean(axis=0), red, atol=4)
    np.testing.assert_allclose(out[:, 19].mean(axis=0), green, atol=4)
    assert out[:, 8:12].std(axis=0).max() < 0.6 * image[:, 8:12].std(axis=0).max()  # the noise is smoothed


# --- measurements ----------------------------------------------------------------------------------
def test_regionprops_intensity_per_channel_named_after_the_channel():
    labels = np.zeros((20, 20), np.int32)
    labels[2:8, 2:8] = 1
    labels[10:18, 5:15] = 2
    astronaut = data.astronaut()[100:120, 200:220]
    table = sl.measure.regionprops_table(labels, intensity=astronaut, channel_names=["red", "green", "blue"])
    for c, name in enumerate(["red", "green", "blue"]):
        alone = sl.measure.regionprops_table(labels, intensity=astronaut[..., c])
        for prop in ("intensity_mean", "intensity_min", "intensity_max"):
            np.testing.assert_allclose(table[f"{prop}-{name}"], alone[prop])
    stack = np.stack([astronaut[..., 0], astronaut[..., 2]]).astype(np.float32)  # a c axis first
    default = sl.measure.regionprops_table(labels, intensity=stack, properties=["intensity_mean"])
    assert list(default) == ["label", "intensity_mean-c0", "intensity_mean-c1"]
    np.testing.assert_allclose(default["intensity_mean-c1"], table["intensity_mean-blue"])
    with pytest.raises(ValueError, match="channel_names must give 2"):
        sl.measure.regionprops_table(labels, intensity=stack, channel_names=["one"])
    with pytest.raises(ValueError, match="one axis of channels"):
        sl.measure.regionprops_table(labels, intensity=np.zeros((3, 20, 21)))


def test_a_table_per_channel_has_a_channel_column():
    masks = np.zeros((2, 16, 16), bool)
    masks[0, 2:6, 2:6] = True
    masks[1, 8:12, 8:14] = True
    table = sl.measure.regionprops_table(masks, channel_axis=0, properties=["area"])
    assert table["channel"].tolist() == ["c0", "c1"] and table["area"].tolist() == [16.0, 24.0]


# --- the same result from a recipe, an RGB TIFF and stacklab run -----------------------------------
def _rgb_tiff(tmp_path):
    path = tmp_path / "astronaut.tif"
    tifffile.imwrite(path, data.astronaut()[::4, ::4], photometric="rgb")
    return path


def test_recipe_on_an_rgb_tiff_filters_each_channel(tmp_path):
    image = sl.io.imread(_rgb_tiff(tmp_path))
    assert image.rgb and image.channel_axis == 2
    expected = sl.filters.gaussian(np.asarray(image.data), sigma=2.0, rgb=True)
    recipe = Recipe(steps=[{"op": "gaussian", "params": {"sigma": 2.0}}])
    out = recipe.run(image)
    assert out.axis_labels == image.axis_labels and out.rgb
    np.testing.assert_array_equal(np.asarray(out.data), expected)
    assert "channel_axis" not in recipe.to_yaml()  # a property of the input, not a step parameter
    np.testing.assert_array_equal(recipe.run(np.asarray(image.data), rgb=True), expected)
    mask = Recipe(steps=[{"op": "gaussian", "params": {"sigma": 2.0}}, {"op": "threshold", "params": {}}]).run(image)
    assert mask.shape == image.shape[:2] and mask.axis_labels == ("y", "x") and mask.channels is None


def test_stacklab_run_on_an_rgb_tiff_filters_each_channel(tmp_path):
    source = _rgb_tiff(tmp_path)
    recipe = Recipe(steps=[{"op": "gaussian", "params": {"sigma": 2.0}}]).save(tmp_path / "recipe.yaml")
    done = subprocess.run([sys.executable, "-m", "napari_stacklab.cli", "run", str(recipe), str(source),
                           "-o", str(tmp_path / "out"), "--format", "tiff", "-q"],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    written = sl.io.imread(tmp_path / "out" / "astronaut.tif")
    expected = sl.filters.gaussian(data.astronaut()[::4, ::4], sigma=2.0, rgb=True)
    np.testing.assert_array_equal(np.asarray(written.data), expected)
    assert written.rgb


# --- the documentation lists every operation's policy -------------------------------------------------
_HEADINGS = {"per_channel": "per channel", "luminance": "luminance", "colour": "colour",
             "native": "native", "refused": "refused"}


def policy_table() -> str:
    """The policy table of docs/user/channels.md, generated from the registry (display adjustments in bold)."""
    families = list(dict.fromkeys(op.family for op in OPS))
    lines = ["| family | " + " | ".join(_HEADINGS[p] for p in POLICIES) + " |",
             "|---" * (len(POLICIES) + 1) + "|"]
    for family in families:
        cells = []
        for policy in POLICIES:
            names = [f"**`{op.name}`**" if op.display_adjustment else f"`{op.name}`"
                     for op in OPS if op.family == family and op.channels == policy]
            cells.append(", ".join(names))
        lines.append(f"| {family} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def test_the_documented_policy_table_is_the_registry():
    from pathlib import Path

    page = (Path(__file__).resolve().parents[1] / "docs" / "user" / "channels.md").read_text(encoding="utf-8")
    assert policy_table() in page, "docs/user/channels.md: paste this table\n" + policy_table()


def test_equalize_a_set_of_colour_images_on_lightness():
    astronaut = data.astronaut()[::2, ::2]
    dim = (astronaut * 0.45).astype(np.uint8)
    same, brightened = sl.equalize.equalize_set([astronaut, dim], reference=0, rgb=True)
    assert brightened.dtype == np.uint8 and brightened.shape == astronaut.shape
    light = [color.rgb2lab(image)[..., 0] for image in (astronaut, dim, brightened)]
    assert abs(light[2].mean() - light[0].mean()) < 1.0 < abs(light[1].mean() - light[0].mean())
    np.testing.assert_allclose(light[2].std(), light[0].std(), rtol=0.05)
    hue = [color.rgb2hsv(image)[..., 0] for image in (dim, brightened)]
    lit = color.rgb2hsv(dim)[..., 1] > 0.3
    assert np.median(np.abs(np.angle(np.exp(2j * np.pi * (hue[1] - hue[0])))[lit])) < np.radians(3)
    assert np.abs(same.astype(int) - astronaut).max() <= 2  # the reference comes back (through L*a*b*)
    lazy = sl.equalize.equalize_set([da.from_array(astronaut, chunks=(100, 100, 1)), dim], reference=0, rgb=True)
    assert isinstance(lazy[0], da.Array)
    np.testing.assert_array_equal(lazy[1], brightened)
    with pytest.raises(ValueError, match=r"images\[1\] must have 3 \(RGB\) or 4"):
        sl.equalize.equalize_set([astronaut, astronaut[..., :2]], rgb=True)


# --- on the GPU (the host-simulated CuPy + cuCIM of tests/_simcupy.py; the real device with -m gpu) ----
GPU_CASES = [("gaussian", {"sigma": 1.5}), ("threshold", {}), ("clahe", {"clip_limit": 0.02}),
             ("adjust_gamma", {"gamma": 0.7}), ("adjust_gain", {"gain": 1.4}), ("unsharp_mask", {"amount": 2.0}),
             ("adjust_saturation", {"factor": 1.5}), ("equalize_hist", {})]


@pytest.mark.parametrize("name, params", GPU_CASES, ids=[name for name, _ in GPU_CASES])
def test_colour_runs_stay_on_the_gpu_and_equal_the_cpu(name, params):
    from _simcupy import real_gpu_present, simulated_gpu

    from napari_stacklab import _backend

    if real_gpu_present():
        pytest.skip("a real GPU is here: tests/test_gpu_paths.py's cuda setting covers the kernels")
    photo = data.astronaut()[::8, ::8]
    op = catalog.get(name)
    expected = _quiet(op.func, photo, rgb=True, device="cpu", **params)
    with simulated_gpu(cucim=True):
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            result = op.func(photo, rgb=True, device="gpu", **params)
        assert not [w for w in record if issubclass(w.category, _backend.GPUFallbackWarning)], name
        assert _backend.on_gpu(result), f"{name}: {type(result)}"
        np.testing.assert_array_equal(result.get(), expected)
