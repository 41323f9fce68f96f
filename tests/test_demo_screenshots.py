"""``ambac-hubspot demo --screenshots DIR``: the whole demo, then every admin page photographed by
Debian's headless Chromium at both widths in one browser session."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
from click.testing import CliRunner

from ambac_hubspot_plugin._demo_pages import WIDTHS, browser_missing, page_file
from ambac_hubspot_plugin._pages._layout import NAV
from ambac_hubspot_plugin.cli import main


def _png_size(path: Path) -> tuple[int, int]:
    """A PNG's width and height, from its IHDR chunk."""
    data = path.read_bytes()[:24]
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path.name} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


def test_every_nav_page_is_photographed_at_both_widths(tmp_path: Path) -> None:
    """Each nav page gets a full-height PNG per width, and the staged state shows on the status page."""
    missing = browser_missing()
    if missing:
        pytest.skip(f"needs {missing}")
    shots = tmp_path / "shots"
    result = CliRunner().invoke(main, ["demo", "--deals", "10", "--screenshots", str(shots), "--json"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    listed = {Path(p).name for p in json.loads(result.output)["screenshots"]}
    expected = {page_file(label, width) for label, _path in NAV for width in WIDTHS}
    assert listed == expected == {p.name for p in shots.iterdir()}
    for width in WIDTHS:
        for label, _path in NAV:
            shot_width, height = _png_size(shots / page_file(label, width))
            assert shot_width == width and height >= 300
    # The status page's cards stack at 375 px: the capture is the whole page, not the 900 px viewport.
    assert _png_size(shots / page_file("Status", 375))[1] > 900


def test_without_chromium_the_command_says_what_to_install(tmp_path: Path) -> None:
    """With no Chromium on PATH the command fails before the demo runs and names what is missing."""
    shots = tmp_path / "shots"
    result = CliRunner().invoke(main, ["demo", "--deals", "0", "--screenshots", str(shots)],
                                env={"PATH": str(tmp_path)})
    assert result.exit_code == 1
    assert "chromium" in result.output.lower() and "apt-get install" in result.output
    assert not shots.exists()
