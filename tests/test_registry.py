"""The registry contract, checked on every declared operation."""

import inspect
from typing import Any, Literal, Sequence

import dask.array as da
import numpy as np
import pytest

from napari_stacklab import catalog, registry
from napari_stacklab import phase as sl_phase
from napari_stacklab import preprocess as sl_preprocess
from napari_stacklab import segment as sl_segment
from napari_stacklab.filters import gaussian
from napari_stacklab.registry import ImageRef, Range, operation, validated


def test_names_are_unique_and_functions_reach_their_record():
    ops = catalog.operations()
    names = [op.name for op in ops]
    assert len(names) == len(set(names))
    assert {"gaussian", "median", "threshold"} <= set(names)
    for op in ops:
        assert op.func.operation is op
        assert catalog.get(op.name) is op


@pytest.mark.parametrize("op", catalog.operations(), ids=lambda op: op.name)
def test_every_operation_follows_the_contract(op):
    params = list(inspect.signature(op.func).parameters.values())
    assert params[0].kind is inspect.Parameter.POSITIONAL_ONLY, "image first and positional"
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params[1:]), "everything else keyword-only"
    assert params[-1].name == "device"
    assert op.menu_id.startswith("napari/layers/"), op.menu_id
    doc = op.func.__doc__ or ""
    for section in ("Parameters", "Returns", "Examples"):
        assert section in doc, f"{op.name} docstring lacks {section}"
    assert op.summary


def test_unknown_operation_lists_known_names():
    with pytest.raises(KeyError, match="gaussian"):
        catalog.get("gausian")


@pytest.mark.parametrize(
    "params, error, words",
    [
        ({"sigma": -1}, ValueError, "sigma must be >= 0"),
        ({"sigma": "2"}, TypeError, "sigma"),
        ({"sigma": float("nan")}, ValueError, "sigma must be finite"),
        ({"truncate": 0.1}, ValueError, "truncate"),
        ({"mode": "bogus"}, ValueError, "mode must be one of"),
        ({"sgima": 1}, TypeError, "unknown parameter"),
    ],
)
def test_invalid_parameters_name_the_parameter(params, error, words):
    with pytest.raises(error, match=words):
        gaussian(np.zeros((8, 8)), **params)


@pytest.mark.parametrize("image, error", [([[1, 2]], TypeError), (np.zeros(5), ValueError),
                                           (np.zeros((0, 4)), ValueError), (np.array([["a"]]), TypeError)])
def test_invalid_images(image, error):
    with pytest.raises(error):
        gaussian(image)


def _frozen(array):
    array = array.copy()
    array.flags.writeable = False
    return array


def test_input_is_never_modified(camera_stack):
    """Every operation whose defaults apply to a grey stack (or an RGB image) leaves it untouched."""
    grey = _frozen(camera_stack)
    rgb = _frozen(np.stack([camera_stack[0]] * 3, axis=-1))
    exercised = []
    for op in catalog.operations():
        if op.image_params or op.frame_ndim > 3:
            continue
        params = {"method": "manual", "value": 50.0} if op.name == "threshold" else {}
        for image in (grey, rgb):
            try:
                op.func(image, **params)
            except (TypeError, ValueError, RuntimeError):
                continue  # not applicable to this input (RGB-only ops; ECC on unrelated frames)
            exercised.append(op.name)
            break
    np.testing.assert_array_equal(grey, camera_stack)
    np.testing.assert_array_equal(rgb[..., 0], camera_stack[0])
    assert len(exercised) >= 0.7 * len([op for op in catalog.operations() if not op.image_params])


def test_dtype_rules():
    for dtype, expected in [(np.uint8, np.float32), (np.uint16, np.float32), (np.float16, np.float32),
                            (np.float32, np.float32), (np.float64, np.float64), (np.int32, np.float64)]:
        assert gaussian(np.ones((6, 6), dtype)).dtype == expected
    big = np.full((6, 6), 60000, np.uint16)
    assert float(gaussian(big).max()) == pytest.approx(60000), "counts are never rescaled"


def test_lazy_in_lazy_out_with_declared_dtype(camera_stack):
    lazy = da.from_array(camera_stack.astype(np.uint16), chunks=(1, 50, 50))
    out = gaussian(lazy, sigma=2)
    assert isinstance(out, da.Array) and out.dtype == np.float32
    np.testing.assert_allclose(out.compute(), gaussian(camera_stack.astype(np.uint16), sigma=2), atol=1e-3)


def test_params_from_hints():
    op = gaussian.operation
    sigma = op.param("sigma")
    assert (sigma.kind, sigma.low, sigma.high, sigma.per_axis) == (float, 0, 1000, True)
    assert op.param("mode").choices[0] == "reflect"
    assert op.bind({}) == {"sigma": 1.0, "truncate": 4.0, "mode": "reflect"}
    assert op.bind({"sigma": [1, 2]})["sigma"] == (1.0, 2.0)


def test_declaring_a_new_operation_with_image_param_and_step_recording():
    @operation(menu="filter", name="_test_difference", dtype="float")
    def difference(image, *, other: ImageRef, weight: Annotated[float, Range(0, 1)] = 1.0):
        """Difference.

        Parameters
        ----------
        image, other : array
        weight : float

        Returns
        -------
        array

        Examples
        --------
        >>> 1
        1
        """
        return image - weight * other

    try:
        a, b = np.ones((4, 4)), np.full((4, 4), 0.25)
        np.testing.assert_allclose(difference(a, other=b), 0.75)
        with pytest.raises(TypeError, match="other"):
            difference(a, other="not an array")
        step = difference.operation.step({"other": b, "weight": 0.5}, refs={"other": "background"})
        assert step == {"op": "_test_difference", "params": {"other": {"layer": "background"}, "weight": 0.5}}
        with pytest.raises(ValueError, match="name the image"):
            difference.operation.step({"other": b})
    finally:
        registry._REGISTRY.pop("_test_difference")


from typing import Annotated  # noqa: E402  (used in the nested declaration above)


def test_family_is_the_public_module_even_for_private_submodules():
    families = {op.name: op.family for op in catalog.operations()}
    assert families["gaussian"] == "filters"
    assert families["similarity_map"] == "register"  # declared in register/_similarity.py


def test_operation_order_does_not_depend_on_import_order():
    import subprocess
    import sys

    def names(first_import):
        code = (f"import napari_stacklab.{first_import}\nfrom napari_stacklab import catalog\n"
                "print(' '.join(op.name for op in catalog.operations()))")
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout

    assert names("stem") == names("filters") == names("register")


def test_validated_checks_hints_like_an_operation_and_adds_device():
    @validated
    def combine(images: Sequence[ImageRef], *, weight: Annotated[float, Range(0, 1)] = 0.5,
                how: Literal["sum", "max"] = "sum", label: Any = None):
        return images, weight, how, label

    a, b = np.zeros((2, 2)), np.ones((2, 2))
    images, weight, how, label = combine([a, b], weight=1, label=object)
    assert images[1] is b and weight == 1.0 and isinstance(weight, float) and how == "sum" and label is object
    assert list(inspect.signature(combine).parameters)[-1] == "device"
    with pytest.raises(ValueError, match="weight must be <= 1"):
        combine([a], weight=2)
    with pytest.raises(ValueError, match="how must be one of"):
        combine([a], how="mean")
    with pytest.raises(TypeError, match="images must be a list of arrays"):
        combine(a)
    with pytest.raises(TypeError, match=r"images\[1\] must be an array"):
        combine([a, "b"])
    with pytest.raises(ValueError, match="device must be one of"):
        combine([a], device="tpu")
    on_cpu, *_ = combine([a], device="cpu")
    assert on_cpu[0] is a


def test_validated_host_only_functions_take_no_device():
    class Offset:
        value = 1

    @validated(device=False)
    def scale(image: ImageRef, *, factor: Annotated[int, Range(1, None)] = 2, offset: Offset | None = None):
        return image * factor + (offset.value if offset else 0)

    assert "device" not in inspect.signature(scale).parameters
    np.testing.assert_array_equal(scale(np.ones(2), factor=3), [3, 3])
    with pytest.raises(TypeError, match="factor must be an integer"):
        scale(np.ones(2), factor=1.5)
    with pytest.raises(TypeError, match="image must be an array"):
        scale([1, 2])
    np.testing.assert_array_equal(scale(np.ones(2), offset=Offset()), [3, 3])
    with pytest.raises(TypeError, match="offset must be of type Offset, got int"):
        scale(np.ones(2), offset=1)


def test_public_functions_outside_the_registry_are_validated_from_their_hints():
    """equalize, matting, phase helpers, line profiles, thresholds: the same messages as operations."""
    image = np.random.default_rng(0).random((32, 32))
    with pytest.raises(ValueError, match="linewidth must be >= 1"):
        sl_preprocess.line_profile(image, (1, 1), (5, 5), linewidth=0)
    with pytest.raises(ValueError, match="method must be one of"):
        sl_segment.threshold_value(image, method="manual")
    with pytest.raises(ValueError, match="exclude_radius must be >= 0"):
        sl_phase.find_sideband(image, exclude_radius=-1)
    for func in (sl_preprocess.line_profile, sl_segment.threshold_value, sl_phase.find_sideband,
                 sl_phase.hologram_wave):
        assert "device" in inspect.signature(func).parameters, func.__name__



def test_rows_of_numbers_and_sequences_of_choices_are_parameters():
    """``list[tuple[float, float]]`` (per-frame shifts) and ``Literal | tuple[Literal, ...]`` (ECC's starts)."""
    from napari_stacklab.registry import _param_from_hint

    rows = _param_from_hint("shifts", list[tuple[float, float]], inspect.Parameter.empty)
    assert rows.kind is list and rows.columns == 2
    assert rows.check(np.array([[0, 1], [2.5, 3]])) == [[0.0, 1.0], [2.5, 3.0]]  # plain lists: YAML-ready
    assert rows.check([(1, 2)]) == [[1.0, 2.0]] and isinstance(rows.check([(1, 2)])[0][0], float)
    with pytest.raises(ValueError, match="every row must hold 2 numbers, row 1 holds 3"):
        rows.check([[0, 0], [1, 2, 3]])
    with pytest.raises(TypeError, match="shifts must be a list of rows of numbers"):
        rows.check("0, 1")
    with pytest.raises(TypeError, match="shifts must be a number"):
        rows.check([[0, "a"]])
    any_width = _param_from_hint("table", list[tuple[float, ...]], None)
    assert any_width.columns is None and any_width.check([[1], [2, 3]]) == [[1.0], [2.0, 3.0]]

    starts = _param_from_hint("start", Literal["a", "b"] | tuple[Literal["a", "b"], ...], "a")
    assert starts.check("b") == "b" and starts.check(["a", "b"]) == ("a", "b") and starts.check(()) == ()
    with pytest.raises(ValueError, match="start must be one of"):
        starts.check(("a", "c"))


def test_the_registration_functions_are_validated_and_take_a_device():
    from napari_stacklab import register

    image = np.random.default_rng(0).random((32, 32))
    for func in (register.ecc, register.phase_correlation, register.similarity_score, register.drift,
                 register.stack_transforms, register.warp):
        assert list(inspect.signature(func).parameters)[-1] == "device", func.__name__
    with pytest.raises(ValueError, match="upsample must be <= 1000"):
        register.phase_correlation(image, image, upsample=5000)
    with pytest.raises(ValueError, match="window must be one of"):
        register.drift(np.stack([image] * 2), window="tukey")
    with pytest.raises(TypeError, match="moving must be an array"):
        register.warp([[1, 2]], register.Transform.from_shift([0, 0]))
    with pytest.raises(ValueError, match="device must be one of"):
        register.similarity_score(image, image, device="tpu")
