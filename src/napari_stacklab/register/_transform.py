"""The :class:`Transform` every registration method returns.

Convention (the one ITK and OpenCV's ECC use, stated once here):

- coordinates are in **(row, col)** order for 2-D and **(plane, row, col)** for
  3-D, i.e. napari's axis order, in pixels, with pixel centres at integers;
- a Transform maps a point of the **fixed** image to the corresponding point of
  the **moving** image. This is the direction resampling needs: to build the
  registered image, every output (fixed-grid) pixel looks up the moving image at
  ``transform.apply_points(pixel)``. Its :meth:`~Transform.inverse` maps moving
  to fixed (what a napari ``affine`` on the moving layer does, see
  :meth:`~Transform.to_napari_affine`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np

__all__ = ["Transform", "MODELS", "MATRIX_MODELS", "polynomial_terms", "scale_translate"]

Model = Literal["translation", "euclidean", "similarity", "affine", "projective", "polynomial"]
#: Every model, the matrix models from the most to the least constrained (composition keeps the more general one).
MODELS: tuple[str, ...] = get_args(Model)
MATRIX_MODELS: tuple[str, ...] = MODELS[:5]
_AFFINE_MODELS = MATRIX_MODELS[:4]
#: Optional array fields, saved as nested lists.
_ARRAYS = ("coefficients", "inverse_coefficients", "residuals", "inliers", "fixed_points", "moving_points")


def polynomial_terms(points: np.ndarray, order: int) -> np.ndarray:
    """Design matrix ``r**i * c**j`` (``i + j <= order``) of 2-D points, shape ``(K, n_terms)``."""
    r, c = points[:, 0], points[:, 1]
    return np.stack([r ** (k - j) * c**j for k in range(order + 1) for j in range(k + 1)], axis=1)


@dataclass
class Transform:
    """A geometric transform from fixed-image to moving-image pixel coordinates.

    Attributes
    ----------
    model : str
        ``"translation"``, ``"euclidean"`` (rigid), ``"similarity"``,
        ``"affine"``, ``"projective"`` or ``"polynomial"``.
    matrix : ndarray, shape ``(D + 1, D + 1)``
        Homogeneous matrix acting on column vectors ``(row, col, 1)`` (2-D) or
        ``(plane, row, col, 1)`` (3-D). For ``"polynomial"`` it is the affine
        part of the fit (used for previews) and ``coefficients`` hold the model.
    coefficients : ndarray, shape ``(2, n_terms)``, optional
        Polynomial model: ``row' = coefficients[0] @ terms``, ``col' =
        coefficients[1] @ terms`` with terms ``r**i * c**j``, ``i + j <= order``
        (see :func:`polynomial_terms`).
    inverse_coefficients : ndarray, optional
        The polynomial fitted in the other direction (moving -> fixed).
    order : int, optional
        Polynomial order (2 or 3).
    residuals : ndarray, shape ``(K,)``, optional
        Per point pair distance (pixels, in the moving image) after the fit.
    inliers : ndarray of bool, shape ``(K,)``, optional
        RANSAC verdict per pair (``False`` = outlier).
    score : float, optional
        Quality of the fit: ECC's final correlation coefficient, or phase
        correlation's peak height.
    fixed_points, moving_points : ndarray, shape ``(K, D)``, optional
        The point pairs a fit was made from (clicked, or matched keypoints of
        :func:`from_features`), in pixels; ``residuals`` and ``inliers``
        refer to them. ``fixed_points[inliers]`` and
        ``moving_points[inliers]`` are the pairs to review.
    metadata : dict
        How the transform was found (JSON-ready values): e.g. ECC's
        ``start``, ``tried``, ``iterations``; the feature detector.
    """

    model: str
    matrix: np.ndarray
    coefficients: np.ndarray | None = None
    inverse_coefficients: np.ndarray | None = None
    order: int | None = None
    residuals: np.ndarray | None = None
    inliers: np.ndarray | None = None
    score: float | None = None
    metadata: dict = field(default_factory=dict)
    fixed_points: np.ndarray | None = None
    moving_points: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {MODELS}, got {self.model!r}")
        self.matrix = np.asarray(self.matrix, dtype=np.float64)
        if self.matrix.ndim != 2 or self.matrix.shape[0] != self.matrix.shape[1] or self.matrix.shape[0] not in (3, 4):
            raise ValueError(f"matrix must be 3x3 (2-D) or 4x4 (3-D), got shape {self.matrix.shape}")
        if self.model == "polynomial":
            if self.ndim != 2:
                raise ValueError("polynomial transforms are 2-D only")
            if self.coefficients is None or self.order not in (2, 3):
                raise ValueError("a polynomial transform needs coefficients and order 2 or 3")
            self.coefficients = np.asarray(self.coefficients, dtype=np.float64)

    # -- construction ------------------------------------------------------
    @classmethod
    def identity(cls, ndim: int = 2, model: str = "translation") -> "Transform":
        """The identity transform of a ``ndim``-D image."""
        return cls(model=model, matrix=np.eye(ndim + 1))

    @classmethod
    def from_shift(cls, shift: Any) -> "Transform":
        """A translation by ``shift`` (fixed -> moving displacement, ``(row, col)``)."""
        shift = np.asarray(shift, dtype=np.float64)
        matrix = np.eye(shift.size + 1)
        matrix[:-1, -1] = shift
        return cls(model="translation", matrix=matrix)

    # -- properties --------------------------------------------------------
    @property
    def ndim(self) -> int:
        """Number of spatial axes (2 or 3)."""
        return self.matrix.shape[0] - 1

    @property
    def is_affine(self) -> bool:
        """True when the transform is exactly an affine matrix (napari can show it without resampling)."""
        return self.model in _AFFINE_MODELS

    @property
    def shift(self) -> np.ndarray:
        """Translation part ``(row, col)`` of the matrix."""
        return self.matrix[:-1, -1].copy()

    # -- algebra -----------------------------------------------------------
    def apply_points(self, points: Any) -> np.ndarray:
        """Map fixed-image points ``(K, D)`` (``(row, col)`` order) to moving-image points."""
        points = np.asarray(points, dtype=np.float64)
        single = points.ndim == 1
        points = np.atleast_2d(points)
        if points.shape[1] != self.ndim:
            raise ValueError(f"points must have {self.ndim} coordinates each, got shape {points.shape}")
        if self.model == "polynomial":
            out = polynomial_terms(points, self.order) @ self.coefficients.T
        else:
            homogeneous = np.c_[points, np.ones(len(points))] @ self.matrix.T
            out = homogeneous[:, :-1] / homogeneous[:, -1:]
        return out[0] if single else out

    def inverse(self) -> "Transform":
        """The transform from moving to fixed coordinates."""
        if self.model == "polynomial":
            if self.inverse_coefficients is None:
                raise ValueError("this polynomial transform has no fitted inverse")
            return replace(
                self,
                matrix=np.linalg.inv(self.matrix),
                coefficients=self.inverse_coefficients,
                inverse_coefficients=self.coefficients,
                residuals=None,
                inliers=None,
                fixed_points=None,
                moving_points=None,
            )
        return replace(self, matrix=np.linalg.inv(self.matrix), residuals=None, inliers=None, fixed_points=None,
                       moving_points=None)

    def compose(self, other: "Transform") -> "Transform":
        """``self @ other``: apply ``other`` first, then ``self`` (matrix product)."""
        if not isinstance(other, Transform):
            raise TypeError(f"can only compose with a Transform, got {type(other).__name__}")
        if other.ndim != self.ndim:
            raise ValueError(f"cannot compose a {self.ndim}-D and a {other.ndim}-D transform")
        if "polynomial" in (self.model, other.model):
            raise ValueError("polynomial transforms cannot be composed into one transform")
        model = MATRIX_MODELS[max(MATRIX_MODELS.index(self.model), MATRIX_MODELS.index(other.model))]
        return Transform(model=model, matrix=self.matrix @ other.matrix)

    def __matmul__(self, other: "Transform") -> "Transform":
        return self.compose(other)

    def scaled(self, factor: float) -> "Transform":
        """The same transform on images resampled by ``factor`` (pyramids): ``S M S^-1``."""
        if self.model == "polynomial":
            raise ValueError("polynomial transforms cannot be rescaled")
        scale = np.diag([factor] * self.ndim + [1.0])
        return replace(self, matrix=scale @ self.matrix @ np.linalg.inv(scale))

    def affine_approximation(self, shape: Any) -> "Transform":
        """Least-squares affine transform closest to this one over an image of ``shape``.

        Exact for affine models; for projective and polynomial models it is the
        preview napari can display without resampling.
        """
        if self.is_affine:
            return self
        grid = np.stack(
            np.meshgrid(*[np.linspace(0, s - 1, 9) for s in shape[-self.ndim :]], indexing="ij"), -1
        ).reshape(-1, self.ndim)
        moved = self.apply_points(grid)
        design = np.c_[grid, np.ones(len(grid))]
        solution, *_ = np.linalg.lstsq(design, moved, rcond=None)
        matrix = np.eye(self.ndim + 1)
        matrix[:-1] = solution.T
        return Transform(model="affine", matrix=matrix)

    def to_napari_affine(
        self,
        scale_fixed: Any = None,
        scale_moving: Any = None,
        translate_fixed: Any = None,
        translate_moving: Any = None,
    ) -> np.ndarray:
        """The moving layer's napari ``affine`` that overlays it on the fixed layer.

        napari maps a layer's data coordinates to world coordinates with
        ``affine @ (translate + scale * data)``. Given both layers' ``scale``
        (and ``translate``), this returns the ``(D + 1, D + 1)`` matrix ``A`` with
        ``A @ (t_m + s_m * x_moving) = t_f + s_f * x_fixed`` for every matching
        pair, so the moving layer lands on the fixed layer in world
        coordinates without resampling. Only affine models can be shown this
        way; use :meth:`affine_approximation` for a preview of the others.
        """
        if not self.is_affine:
            raise ValueError(f"a {self.model} transform is not affine; use affine_approximation(shape) first")
        d = self.ndim
        to_world_fixed = scale_translate(scale_fixed, translate_fixed, d)
        to_world_moving = scale_translate(scale_moving, translate_moving, d)
        return to_world_fixed @ np.linalg.inv(self.matrix) @ np.linalg.inv(to_world_moving)

    # -- persistence -------------------------------------------------------
    def to_dict(self) -> dict:
        """Plain JSON-ready dictionary (``from_dict`` restores it)."""
        out = {"stacklab_transform": _FORMAT, "model": self.model, "matrix": self.matrix.tolist()}
        for key in _ARRAYS:
            value = getattr(self, key)
            if value is not None:
                out[key] = np.asarray(value).tolist()
        if self.order is not None:
            out["order"] = int(self.order)
        if self.score is not None:
            out["score"] = float(self.score)
        if self.metadata:
            out["metadata"] = json.loads(json.dumps(self.metadata, default=_plain))
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "Transform":
        """The transform :meth:`to_dict` describes (a dictionary as read from JSON)."""
        if not isinstance(data, dict):
            raise TypeError(f"a transform is described by a dict, got {type(data).__name__}")
        missing = [key for key in ("model", "matrix") if key not in data]
        if missing:
            raise ValueError(f"not a transform: the dict has no {' and no '.join(map(repr, missing))} entry")
        if data.get("stacklab_transform", _FORMAT) > _FORMAT:
            raise ValueError(
                f"this transform was saved in format {data['stacklab_transform']}, newer than this "
                f"napari-stacklab reads ({_FORMAT}); update napari-stacklab"
            )
        arrays = {
            key: np.asarray(data[key], dtype=bool if key == "inliers" else np.float64)
            for key in _ARRAYS
            if key in data
        }
        return cls(
            model=data["model"],
            matrix=np.asarray(data["matrix"], dtype=np.float64),
            order=data.get("order"),
            score=data.get("score"),
            metadata=dict(data.get("metadata", {})),
            **arrays,
        )

    def to_json(self, path: str | Path | None = None) -> str:
        """JSON text of the transform; also written to ``path`` when given.

        Examples
        --------
        >>> t = Transform.from_shift([1.5, -2.0])
        >>> Transform.from_json(t.to_json()).shift.tolist()
        [1.5, -2.0]
        """
        text = json.dumps(self.to_dict(), indent=1)
        if path is not None:
            Path(path).write_text(text, encoding="utf-8")
        return text

    @classmethod
    def from_json(cls, text_or_path: str | Path) -> "Transform":
        """Load a transform from JSON text or from a ``.json`` file."""
        text = str(text_or_path)
        if not text.lstrip().startswith("{"):
            text = Path(text_or_path).read_text(encoding="utf-8")
        return cls.from_dict(json.loads(text))


#: Version of the saved transform format (``"stacklab_transform"`` in the JSON).
_FORMAT = 1


def _plain(value: Any) -> Any:
    """JSON for NumPy values in metadata."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"metadata value {value!r} cannot be saved as JSON")


def scale_translate(scale: Any, translate: Any, ndim: int) -> np.ndarray:
    """Homogeneous matrix of napari's data-to-world ``translate + scale * x`` over the last ``ndim`` axes."""
    matrix = np.eye(ndim + 1)
    if scale is not None:
        scale = np.atleast_1d(np.asarray(scale, dtype=np.float64))
        if scale.ndim != 1 or len(scale) < ndim or not np.isfinite(scale).all() or (scale[-ndim:] <= 0).any():
            raise ValueError(f"scale must give {ndim} positive pixel sizes, got {scale.tolist()}")
        matrix[np.arange(ndim), np.arange(ndim)] = scale[-ndim:]
    if translate is not None:
        translate = np.atleast_1d(np.asarray(translate, dtype=np.float64))
        if translate.ndim != 1 or len(translate) < ndim or not np.isfinite(translate).all():
            raise ValueError(f"translate must give {ndim} finite offsets, got {translate.tolist()}")
        matrix[:-1, -1] = translate[-ndim:]
    return matrix
