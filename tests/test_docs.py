"""The documentation builds without warnings (so an API rename or a lost page fails CI)."""

import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"


@pytest.mark.slow
def test_docs_build_without_warnings(tmp_path):
    pytest.importorskip("sphinx")
    pytest.importorskip("myst_parser")
    pytest.importorskip("numpydoc")
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", str(DOCS), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    html = (tmp_path / "api.html").read_text(encoding="utf-8")
    for name in ("gaussian", "threshold", "virtual_detector", "unwrap", "regionprops_table", "Recipe"):
        assert name in html, f"{name} missing from the API reference"
    assert "stacklab run" in (tmp_path / "cli.html").read_text(encoding="utf-8")
