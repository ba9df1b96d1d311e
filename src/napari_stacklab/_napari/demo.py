"""``stacklab demo``: napari with the plugin, a generated sample and a first widget docked."""

from __future__ import annotations

DEMO_WIDGETS = {"timelapse": "Gaussian", "stem4d": "Gaussian", "hologram": "Gaussian"}


def build_viewer(sample: str = "timelapse"):
    """A viewer showing ``sample`` with the operation widget of the demo docked (no event loop)."""
    import napari

    viewer = napari.Viewer(title=f"napari-stacklab demo: {sample}")
    viewer.open_sample("napari-stacklab", sample)
    viewer.window.add_plugin_dock_widget("napari-stacklab", DEMO_WIDGETS[sample])
    return viewer


def launch(sample: str = "timelapse", screenshot: str | None = None) -> None:
    import napari

    viewer = build_viewer(sample)
    if screenshot:
        from qtpy.QtWidgets import QApplication

        QApplication.processEvents()
        viewer.screenshot(screenshot, canvas_only=False)
        viewer.close()
        return
    napari.run()
