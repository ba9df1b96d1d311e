"""Unit spellings: one short canonical form per unit, whatever the file or pint wrote."""

from __future__ import annotations

_CANONICAL = {
    "um": ("um", "µm", "μm", "micron", "microns", "micrometer", "micrometre", "\\u00b5m"),
    "nm": ("nm", "nanometer", "nanometre"),
    "mm": ("mm", "millimeter", "millimetre"),
    "cm": ("cm", "centimeter", "centimetre"),
    "m": ("m", "meter", "metre"),
    "pm": ("pm", "picometer", "picometre"),
    "angstrom": ("angstrom", "å", "Å", "ångström"),
    "s": ("s", "sec", "second", "seconds"),
    "ms": ("ms", "millisecond", "milliseconds", "msec"),
    "us": ("us", "µs", "μs", "microsecond", "microseconds"),
    "min": ("min", "minute", "minutes"),
    "h": ("h", "hr", "hour", "hours"),
    "mrad": ("mrad", "milliradian"),
    "rad": ("rad", "radian"),
    "1/nm": ("1/nm", "1 / nanometer", "nm^-1", "1/nanometer"),
    "1/angstrom": ("1/angstrom", "1 / angstrom", "1/å", "1/Å"),
    "pixel": ("pixel", "pixels", "px", "", "none", "dimensionless"),
}
_LOOKUP = {alias.lower(): canonical for canonical, aliases in _CANONICAL.items() for alias in aliases}

#: Length units (in micrometres) that TIFF resolution tags, ImageJ and OME can express.
LENGTH_IN_UM = {"pm": 1e-6, "angstrom": 1e-4, "nm": 1e-3, "um": 1.0, "mm": 1e3, "cm": 1e4, "m": 1e6}
#: Canonical unit -> OME UnitsLength / UnitsTime symbol.
OME_SYMBOL = {
    "pm": "pm", "angstrom": "Å", "nm": "nm", "um": "µm", "mm": "mm", "cm": "cm", "m": "m",
    "s": "s", "ms": "ms", "us": "µs", "min": "min", "h": "h",
}
OME_TIME = ("s", "ms", "us", "min", "h")


def normalize_unit(unit: object) -> str:
    """Canonical short spelling of ``unit`` (``"micron"`` -> ``"um"``); unknown units pass through."""
    if unit is None:
        return "pixel"
    text = str(unit).strip()
    return _LOOKUP.get(text.lower(), _LOOKUP.get(text, text))


def file_stem(path: object) -> str:
    """Display name of a file: its name without the format suffix (``a.b.ome.tif`` -> ``a.b``)."""
    name = str(path).rstrip("/\\").replace("\\", "/").rsplit("/", 1)[-1]
    lower = name.lower()
    for double in (".ome.tif", ".ome.tiff", ".ome.zarr"):
        if lower.endswith(double):
            return name[: -len(double)]
    return name.rsplit(".", 1)[0] if "." in name.lstrip(".") else name
