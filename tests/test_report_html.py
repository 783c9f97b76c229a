"""report.html: one self-contained page that a real browser renders offline, every chart drawn.

The page is checked in headless Chromium (Debian's `chromium`, installed by scripts/test): it loads
from a file with no network, every chart reports itself drawn, the console has no error, and a
screenshot is not blank. Skipped where Chromium is missing outside CI; in CI a missing Chromium
fails.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from soaktui.log.reader import iter_events
from soaktui.report import build_report, fold, write_report_files
from soaktui.report.html import charts, render_html
from tests.test_hardware_report import hot_run

DATA = Path(__file__).parent / "data"
MAX_BYTES = 10 * 1024 * 1024


def recorded():
    return fold(iter_events(DATA / "ui" / "recorded_events.jsonl")).snapshot()


@pytest.mark.unit
def test_the_page_is_self_contained_and_small():
    page = render_html(recorded()).decode()
    assert len(page.encode()) < MAX_BYTES
    assert "plotly.js v3" in page  # the library itself, inlined
    own = render_html(recorded(), js="/* the library */").decode()  # the page without the library's text
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", own)  # no CDN, no remote asset
    assert "<h2>Verdict</h2>" in page and "<strong>sim-qwen2.5-14b-instruct</strong>" in page
    assert 'class="matrix"' in page and 'class="good"' in page


@pytest.mark.unit
def test_every_chart_has_its_data_and_axes_from_zero():
    ids = [c["id"] for c in charts(recorded())]
    assert ids[:3] == ["over-time-tps", "over-time-ttft", "over-time-errors"]
    assert {"latency-ttft", "latency-e2e", "concurrency", "context"} <= set(ids)
    for c in charts(recorded()):
        assert c["layout"]["yaxis"]["rangemode"] == "tozero"
        assert c["data"] and all(t["x"] for t in c["data"])


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if found is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("chromium is required in CI for the report.html browser test")
        pytest.skip("chromium is not installed")
    return found


def browse(page: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
         "--enable-logging=stderr", "--log-level=0", "--virtual-time-budget=15000",
         "--host-resolver-rules=MAP * ~NOTFOUND",  # no network: the page must not need any
         *extra, page.as_uri()],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip


def png_spread(path: Path) -> tuple[int, float]:
    """(distinct byte values, share of bytes that are not white) of a PNG's decoded scanlines."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat = 8, b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        if kind == b"IDAT":
            idat += data[pos + 8 : pos + 8 + length]
        pos += 12 + length
    raw = zlib.decompress(idat)
    return len(set(raw)), sum(1 for b in raw[::97] if b < 240) / len(raw[::97])


@pytest.mark.e2e
@pytest.mark.timeout(600)
def test_a_real_browser_renders_every_chart_with_no_console_error(tmp_path: Path):
    chromium()
    run_dir = hot_run().write(tmp_path / "run")  # a run with hardware readings: every kind of chart
    snap, _ = build_report(run_dir)
    (page,) = write_report_files(run_dir, snap, ("html",))
    expected = len(charts(snap))
    assert expected >= 5 and "hardware" in [c["id"] for c in charts(snap)]
    dom = browse(page, "--dump-dom")
    body = re.search(r"<body[^>]*>", dom.stdout)
    assert body, dom.stderr[-2000:]
    assert f'data-charts-expected="{expected}"' in body.group(0)
    assert f'data-charts-rendered="{expected}"' in body.group(0), body.group(0)
    assert dom.stdout.count('class="main-svg"') >= expected  # plotly drew an SVG per chart
    console = [line for line in dom.stderr.splitlines() if ":CONSOLE" in line]
    assert not [line for line in console if "error" in line.lower() or "uncaught" in line.lower()], console
    shot = tmp_path / "page.png"
    browse(page, f"--screenshot={shot}", "--window-size=1280,3000")
    distinct, inked = png_spread(shot)
    assert distinct > 20 and inked > 0.01, (distinct, inked)  # not a blank page
