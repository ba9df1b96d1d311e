"""Manifest contributions that are not registry operations.

Readers, writers, sample data and stateful tools (point registration, the
4D-STEM navigator, ...) are declared here as plain data; ``manifest.py``
merges them with one widget per registry operation into ``napari.yaml``.
Importing this module imports nothing heavy (the reader's file patterns come
from :data:`napari_stacklab.io.READER_PATTERNS`, the one list of readable suffixes).
"""

from ..io import READER_PATTERNS

PACKAGE = "napari_stacklab"
NAME = "napari-stacklab"

READERS = [
    {
        "id": "get_reader",
        "python_name": f"{PACKAGE}._napari.reader:napari_get_reader",
        "title": "Open microscopy data with napari-stacklab",
        "filename_patterns": list(READER_PATTERNS),
        "accepts_directories": True,
    },
]

WRITERS = [
    {
        "id": "write_tiff",
        "python_name": f"{PACKAGE}._napari.writer:write_tiff",
        "title": "Save as TIFF (keeps dtype and pixel size)",
        "layer_types": ["image"],
        "filename_extensions": [".tif", ".tiff"],
    },
    {
        "id": "write_labels_tiff",
        "python_name": f"{PACKAGE}._napari.writer:write_tiff",
        "title": "Save labels as TIFF (keeps dtype and pixel size)",
        "layer_types": ["labels"],
        "filename_extensions": [".tif", ".tiff"],
    },
]

SAMPLES = [
    {
        "id": "sample_timelapse",
        "python_name": f"{PACKAGE}._napari.samples:timelapse",
        "key": "timelapse",
        "display_name": "Drifting fluorescence time-lapse (generated)",
    },
    {
        "id": "sample_stem4d",
        "python_name": f"{PACKAGE}._napari.samples:stem4d",
        "key": "stem4d",
        "display_name": "4D-STEM scan (generated)",
    },
    {
        "id": "sample_hologram",
        "python_name": f"{PACKAGE}._napari.samples:hologram",
        "key": "hologram",
        "display_name": "Off-axis hologram with wrapped phase (generated)",
    },
]

#: Operations whose menu entry opens a tool built on the operation (its controls plus more) instead of the
#: generated widget: drift correction adds the drift plot and "apply the same shifts to another layer";
#: applying a transform or shifts takes them from a layer or a JSON file and applies them to any layer;
#: background removal takes its thresholds as fractions of the image's range, shows mask, alpha and subject
#: and saves them.
OPERATION_TOOLS = {
    "drift_correct": f"{PACKAGE}._napari.drift_widget:DriftWidget",
    "apply_transform": f"{PACKAGE}._napari.transform_tool:TransformTool",
    "apply_drift": f"{PACKAGE}._napari.transform_tool:TransformTool",
    "remove_background": f"{PACKAGE}._napari.matting_widget:BackgroundRemovalWidget",
}

#: Stateful tools and utility widgets: id, python_name, title, menu (short or full id, or None).
TOOLS = [
    {
        "id": "export_recipe",
        "python_name": f"{PACKAGE}._napari.recipe_widget:RecipeExportWidget",
        "title": "Export recipe or script",
        "menu": "napari/layers/data",
    },
    {
        "id": "stem_navigator",
        "python_name": f"{PACKAGE}._napari.navigator:StemNavigator",
        "title": "4D-STEM navigator",
        "menu": "visualize",
    },
    {
        "id": "measure_labels",
        "python_name": f"{PACKAGE}._napari.measure_widget:MeasureWidget",
        "title": "Measure labels",
        "menu": "measure",
    },
    {
        "id": "equalize_set",
        "python_name": f"{PACKAGE}._napari.equalize_widget:EqualizeSetWidget",
        "title": "Equalize a set of images",
        "menu": "napari/layers/filter",
    },
    {
        "id": "prepare_image",
        "python_name": f"{PACKAGE}._napari.prepare_widget:PrepareImageWidget",
        "title": "Prepare image",
        "menu": "napari/layers/filter",
    },
    {
        "id": "histogram",
        "python_name": f"{PACKAGE}._napari.histogram_widget:HistogramWidget",
        "title": "Histogram",
        "menu": "napari/layers/visualize",
    },
    {
        "id": "line_profile",
        "python_name": f"{PACKAGE}._napari.profile_widget:LineProfileWidget",
        "title": "Line profile",
        "menu": "napari/layers/visualize",
    },
    {
        "id": "point_registration",
        "python_name": f"{PACKAGE}._napari.points_tool:PointRegistrationWidget",
        "title": "Point registration",
        "menu": "register",
    },
    {
        "id": "align_set",
        "python_name": f"{PACKAGE}._napari.align_widget:AlignSetWidget",
        "title": "Align images to a base",
        "menu": "register",
    },
    {
        "id": "stitch_tiles",
        "python_name": f"{PACKAGE}._napari.stitch_tool:StitchTool",
        "title": "Stitch tiles into a mosaic",
        "menu": "register",
    },
]
