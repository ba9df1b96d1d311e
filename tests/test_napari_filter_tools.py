"""The filtering workflow tools in a real viewer: equalize, prepare, background removal, histogram, profile."""

import numpy as np
import pytest
from skimage import color, data, measure

from napari_stacklab.equalize import laplacian_variance
from napari_stacklab._napari.equalize_widget import EqualizeSetWidget
from napari_stacklab._napari.histogram_widget import HistogramWidget
from napari_stacklab._napari.matting_widget import BackgroundRemovalWidget
from napari_stacklab._napari.prepare_widget import PrepareImageWidget
from napari_stacklab._napari.profile_widget import LineProfileWidget
from napari_stacklab.recipe import Recipe

WAIT_MS = 60_000


def finish(qtbot, tool):
    qtbot.waitUntil(lambda: not tool.running, timeout=WAIT_MS)


def test_equalize_set_widget(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    camera = data.camera()[::2, ::2]
    viewer.add_image(camera, name="camera", scale=(0.5, 0.5), units=("um", "um"))
    viewer.add_image(data.moon()[:256, :256] // 3 + 20, name="moon", scale=(0.5, 0.5), units=("um", "um"))
    widget = EqualizeSetWidget(viewer)
    widget.images.value = [viewer.layers["camera"], viewer.layers["moon"]]
    assert widget.reference.choices == ("median", "camera", "moon")  # only the chosen images
    widget.reference.value = "camera"
    widget.method.value = "histogram"
    widget.run_button.clicked.emit()
    finish(qtbot, widget)
    out = viewer.layers["moon equalized"]
    assert "camera equalized" in viewer.layers
    step = out.metadata["stacklab"]["steps"][-1]
    assert step == {"op": "equalize_levels", "params": {"method": "histogram", "reference": {"layer": "camera"}}}
    assert viewer.layers["camera equalized"].metadata["stacklab"]["steps"][-1] == step
    assert tuple(str(u) for u in out.units) == ("micrometer", "micrometer")
    # matched histograms: the fraction of pixels below the camera's median is one half, give or take
    # the largest tie of the moon image (matching maps all pixels of one value to one value)
    largest_tie = np.unique(viewer.layers["moon"].data, return_counts=True)[1].max() / out.data.size
    assert abs(np.mean(out.data <= np.median(camera)) - 0.5) <= largest_tie + 0.01
    assert tuple(viewer.layers["camera equalized"].scale) == (0.5, 0.5)
    widget.sharpness.value = True
    widget.run()
    finish(qtbot, widget)
    out = viewer.layers["moon equalized"]
    np.testing.assert_allclose(laplacian_variance(out.data), laplacian_variance(camera), rtol=0.02)
    widget.method.value = "meanstd"
    widget.reference.value = "median"
    widget.run()
    finish(qtbot, widget)
    assert len([layer for layer in viewer.layers if layer.name.endswith("equalized")]) == 2  # replaced
    means = [viewer.layers[n].data.mean() for n in ("camera equalized", "moon equalized")]
    np.testing.assert_allclose(means[0], means[1], rtol=1e-3)


def test_prepare_image_widget_preview_apply_and_compare(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    coins = data.coins()
    viewer.add_image(coins, name="coins", scale=(0.5, 0.5), units=("um", "um"))
    widget = PrepareImageWidget(viewer)
    widget.image.value = viewer.layers["coins"]
    widget.bilateral.value = 2.0
    widget.clahe_clip.value = 0.02
    widget.sharpen_amount.value = 1.0
    widget.gamma.value = 0.8
    widget.gain.value = 2.0
    # the sliders preview in the background (debounced), a displayed copy only: no result layer yet
    qtbot.waitUntil(lambda: not widget.previewing and "coins prepared (preview)" in viewer.layers, timeout=WAIT_MS)
    preview = viewer.layers["coins prepared (preview)"]
    assert "coins prepared" not in viewer.layers and preview.metadata["stacklab"]["role"] == "preview"
    widget.apply()
    finish(qtbot, widget)
    out = viewer.layers["coins prepared"]
    assert "coins prepared (preview)" not in viewer.layers
    steps = out.metadata["stacklab"]["steps"]
    assert [s["op"] for s in steps] == ["bilateral", "clahe", "unsharp_mask", "adjust_gamma", "adjust_gain"]
    np.testing.assert_allclose(out.data, Recipe(steps=steps).run(coins), rtol=1e-6)
    assert out.data.max() > 1.5  # gain 2 applied to a CLAHE image in [0, 1]
    assert tuple(out.scale) == (0.5, 0.5) and str(out.units[-1]) == "micrometer"
    assert widget.toggle_compare() is True and viewer.canvas.grid.enabled
    widget.compare_button.clicked.emit()
    assert not viewer.canvas.grid.enabled


def test_prepare_previews_a_large_image_on_a_subsampled_copy(make_napari_viewer, qtbot):
    from napari_stacklab._napari.prepare_widget import PREVIEW_PIXELS

    viewer = make_napari_viewer()
    big = np.tile(data.camera(), (2, 2))  # 1024 x 1024
    viewer.add_image(big, name="big", scale=(0.1, 0.1))
    widget = PrepareImageWidget(viewer)
    widget.image.value = viewer.layers["big"]
    widget.gain.value = 3.0
    qtbot.waitUntil(lambda: not widget.previewing and "big prepared (preview)" in viewer.layers, timeout=WAIT_MS)
    preview = viewer.layers["big prepared (preview)"]
    assert preview.data.size <= PREVIEW_PIXELS and preview.data.shape == (512, 512)
    np.testing.assert_allclose(preview.data, big[::2, ::2] * 3.0, rtol=1e-6)
    assert tuple(preview.scale) == (0.2, 0.2)  # drawn over the original


def test_prepare_image_widget_rgb_saturation(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    viewer.add_image(data.astronaut()[::4, ::4], name="astronaut", rgb=True)
    widget = PrepareImageWidget(viewer)
    widget.image.value = viewer.layers["astronaut"]
    widget.saturation.value = 0.0
    widget.apply()
    finish(qtbot, widget)
    out = viewer.layers["astronaut prepared"]
    assert out.rgb and out.data.shape == (128, 128, 3) and out.data.dtype == np.uint8
    np.testing.assert_array_equal(out.data[..., 0], out.data[..., 1])  # grey
    assert out.metadata["stacklab"]["steps"] == [{"op": "adjust_saturation", "params": {"factor": 0.0}}]


def _suit(photo):
    """The astronaut's orange suit: strongly saturated red-orange pixels."""
    hsv = color.rgb2hsv(photo)
    return (hsv[..., 0] < 0.08) & (hsv[..., 1] > 0.45) & (hsv[..., 2] > 0.35)


def _hue_change(before, after, where):
    """Per pixel HSV hue change in degrees, wrapped to [-180, 180)."""
    turn = color.rgb2hsv(after)[..., 0][where] - color.rgb2hsv(before)[..., 0][where]
    return np.degrees(np.angle(np.exp(2j * np.pi * turn)))


def test_prepare_on_astronaut_keeps_the_suit_hue_and_uint8_rgb_and_replays(make_napari_viewer, qtbot, tmp_path):
    """Issue 15: the Prepare tool turned the orange suit grey-blue, float -0.42..1.44, per channel."""
    import subprocess
    import sys

    import tifffile

    import napari_stacklab as sl

    photo = data.astronaut()
    path = tmp_path / "astronaut.tif"
    tifffile.imwrite(path, photo, photometric="rgb")
    viewer = make_napari_viewer()
    viewer.open(str(path), plugin="napari-stacklab")
    layer = viewer.layers["astronaut"]
    assert layer.rgb
    widget = PrepareImageWidget(viewer)
    widget.image.value = layer
    # the tutorial's adjustments (examples/prepare_image.py): every slider of the chain moved
    widget.bilateral.value = 2.0
    widget.saturation.value = 1.6
    widget.clahe_clip.value = 0.02
    widget.sharpen_sigma.value = 2.0
    widget.sharpen_amount.value = 1.5
    widget.gamma.value = 0.7
    widget.gain.value = 1.3
    qtbot.waitUntil(lambda: not widget.previewing and "astronaut prepared (preview)" in viewer.layers,
                    timeout=WAIT_MS)
    preview = viewer.layers["astronaut prepared (preview)"]
    assert preview.rgb and preview.data.dtype == np.uint8 and tuple(preview.contrast_limits) == (0, 255)
    widget.apply()
    finish(qtbot, widget)
    out = viewer.layers["astronaut prepared"]
    assert out.rgb and out.data.dtype == np.uint8 and out.data.shape == photo.shape
    suit = _suit(photo)
    assert suit.sum() > 20000
    change = _hue_change(photo, out.data, suit)
    assert abs(np.mean(change)) < 10 and np.median(np.abs(change)) < 10
    # it did something: more colourful
    assert color.rgb2hsv(out.data)[..., 1][suit].mean() > color.rgb2hsv(photo)[..., 1][suit].mean() + 0.05

    steps = out.metadata["stacklab"]["steps"]
    assert [s["op"] for s in steps] == ["bilateral", "adjust_saturation", "clahe", "unsharp_mask", "adjust_gamma",
                                        "adjust_gain"]
    assert all(set(s) == {"op", "params"} for s in steps)  # ordinary steps, nothing "per channel"
    recipe = Recipe.from_metadata(out.metadata)
    np.testing.assert_array_equal(recipe.run(photo, rgb=True), out.data)
    replayed = recipe.run(sl.io.imread(path))
    assert replayed.rgb
    np.testing.assert_array_equal(np.asarray(replayed.data), out.data)
    saved = recipe.save(tmp_path / "prepare.yaml")
    done = subprocess.run([sys.executable, "-m", "napari_stacklab.cli", "run", str(saved), str(path), "-o",
                           str(tmp_path / "out"), "--format", "tiff", "-q"], capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    written = sl.io.imread(tmp_path / "out" / "astronaut.tif")
    assert written.rgb and written.dtype == np.uint8
    np.testing.assert_array_equal(np.asarray(written.data), out.data)


def _disk_image():
    yy, xx = np.mgrid[:96, :96]
    truth = np.clip((28 - np.hypot(yy - 48, xx - 45)) / 4 + 0.5, 0, 1)
    return (30 + 190 * truth).astype(np.uint8), truth


def test_background_removal_widget_and_save(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    pytest.importorskip("pymatting")
    viewer = make_napari_viewer()
    image, truth = _disk_image()
    viewer.add_image(image, name="disk", scale=(2.0, 2.0))
    widget = BackgroundRemovalWidget(viewer)
    widget.image.value = viewer.layers["disk"]
    low, high = float(image.min()), float(image.max())
    widget.foreground.value = (125 - low) / (high - low)  # thresholds are fractions of the image's range
    widget.background.value = (40 - low) / (high - low)
    widget.erode_size.value = 4
    widget.new_background.value = "white"
    widget.run_button.clicked.emit()
    finish(qtbot, widget)
    alpha = viewer.layers["disk alpha"].data
    assert np.abs(alpha - truth).mean() < 0.02
    assert viewer.layers["disk mask"].data.sum() > 0
    subject = viewer.layers["disk subject"].data
    assert subject[0, 0] == 255 and tuple(viewer.layers["disk subject"].scale) == (2.0, 2.0)

    step = viewer.layers["disk alpha"].metadata["stacklab"]["steps"][-1]
    assert step["op"] == "remove_background" and step["params"]["foreground"] == pytest.approx(125, abs=0.5)

    # no folder chosen: Save asks for one (never the current directory); cancelling writes nothing
    asked = []
    monkeypatch.setattr(type(widget), "ask_folder", lambda self: asked.append(True) or None)
    monkeypatch.chdir(tmp_path)
    assert widget.save() == [] and asked == [True] and list(tmp_path.iterdir()) == []
    monkeypatch.setattr(type(widget), "ask_folder", lambda self: tmp_path)
    widget.save_button.clicked.emit()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["disk_background_removed.png", "disk_original.png", "disk_subject.png"]
    import imageio.v3 as iio

    np.testing.assert_array_equal(iio.imread(tmp_path / "disk_original.png"), image)
    cut = iio.imread(tmp_path / "disk_subject.png")
    assert cut.shape[-1] == 4 and cut.shape[0] < 96  # RGBA, cropped to the subject

    asked = []
    monkeypatch.setattr(type(widget), "confirm_overwrite", lambda self, paths: asked.append(paths) or False)
    before = (tmp_path / "disk_original.png").stat().st_mtime_ns
    assert widget.save() == []
    assert len(asked[0]) == 3 and (tmp_path / "disk_original.png").stat().st_mtime_ns == before
    monkeypatch.setattr(type(widget), "confirm_overwrite", lambda self, paths: True)
    assert len(widget.save()) == 3


def test_background_removal_from_labels_mask_only(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    image, truth = _disk_image()
    viewer.add_image(image, name="disk")
    viewer.add_labels((truth > 0.5).astype(np.int32) * 2, name="drawn")
    widget = BackgroundRemovalWidget(viewer)
    widget.image.value = viewer.layers["disk"]
    widget.mask_source.value = "labels layer"
    widget.labels.value = viewer.layers["drawn"]
    widget.mask_only.value = True
    widget.new_background.value = "black"
    widget.run()
    finish(qtbot, widget)
    np.testing.assert_array_equal(widget.result["mask"], truth > 0.5)
    assert viewer.layers["disk subject"].data[0, 0] == 0
    step = viewer.layers["disk mask"].metadata["stacklab"]["steps"][-1]
    assert step["op"] == "remove_background" and step["params"]["mask"] == {"layer": "drawn"}
    assert viewer.layers["disk mask"].metadata["stacklab"]["output"] == "mask"  # which part of the result


def test_background_removal_thresholds_follow_a_float_image_and_an_empty_mask_is_said(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    image, truth = _disk_image()
    viewer.add_image(image.astype(np.float32) / 1000.0, name="float disk")  # values 0.03 .. 0.22
    widget = BackgroundRemovalWidget(viewer)
    widget.image.value = viewer.layers["float disk"]
    widget.mask_only.value = True
    widget.run()
    finish(qtbot, widget)
    np.testing.assert_array_equal(widget.result["mask"], image >= 30 + 0.5 * (image.max() - 30))
    assert widget.result["mask"].any() and "Foreground" in widget.status.value
    widget.foreground.value = 1.0
    widget.min_size.value = 10**6  # nothing survives: an empty mask, said so
    widget.run()
    finish(qtbot, widget)
    assert "the mask is empty" in widget.status.value


def test_histogram_widget_follows_selection_and_limits(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    coins = data.coins()
    viewer.add_image(coins, name="coins")
    viewer.add_image(data.camera(), name="camera")
    widget = HistogramWidget(viewer)
    viewer.layers.selection.active = viewer.layers["coins"]
    expected, _ = np.histogram(coins, bins=256, range=(coins.min(), coins.max()))
    qtbot.waitUntil(lambda: not widget.busy and widget.counts is not None and widget.counts.sum() == coins.size,
                    timeout=WAIT_MS)
    np.testing.assert_array_equal(widget.counts, expected)
    assert widget.axes.get_yscale() == "log"
    viewer.layers["coins"].contrast_limits = (50, 180)
    assert [line.get_xdata()[0] for line in widget.limit_lines] == [50, 180]
    viewer.layers.selection.active = viewer.layers["camera"]
    qtbot.waitUntil(lambda: not widget.busy and widget.counts.sum() == data.camera().size, timeout=WAIT_MS)
    widget.bins.value = 32
    qtbot.waitUntil(lambda: not widget.busy and widget.counts.size == 32, timeout=WAIT_MS)


def test_line_profile_widget_physical_units_and_csv(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    camera = data.camera().astype(np.float32)
    viewer.add_image(camera, name="camera", scale=(0.25, 0.25), units=("um", "um"))
    shapes = viewer.add_shapes([[[10, 20], [50, 50]]], shape_type="line", name="line", scale=(0.25, 0.25))
    widget = LineProfileWidget(viewer)
    widget.image.value = viewer.layers["camera"]
    widget.shapes.value = shapes
    widget.linewidth.value = 3
    distance, values = widget.plot()
    expected = measure.profile_line(camera, (10, 20), (50, 50), linewidth=3, reduce_func=np.mean)
    np.testing.assert_allclose(values, expected, rtol=1e-5)
    np.testing.assert_allclose(distance[-1], 50 * 0.25)  # a 30-40-50 line of 0.25 um pixels
    assert "micrometer" in widget.axes.get_xlabel()
    widget.path.value = tmp_path / "profile.csv"
    widget.export_button.clicked.emit()
    table = np.loadtxt(tmp_path / "profile.csv", delimiter=",", skiprows=1)
    np.testing.assert_allclose(table[:, 1], expected, rtol=1e-5)
    assert (tmp_path / "profile.csv").read_text().startswith("distance_micrometer,camera")
    assert widget.export() is None and "exists" in widget.status.value  # refused, said, not raised
    shapes.data = [np.array([[0, 0], [0, 40]])]  # moving the line re-plots
    assert widget.values.size == 41
