"""`loop report` through the CLI, rendered in headless Chromium."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from cli_helpers import Cli


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def test_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    browser = _chromium()
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("CI must render the report: install Debian's chromium package")
        pytest.skip("no chromium on this machine (apt-get install chromium)")
    cli = Cli(tmp_path)
    cli("demo", "--rounds", "2")
    out = tmp_path / "report.html"
    doc = cli.json("report", "demo-p3ht", "-o", out)
    assert doc["sections"]["summary"]["measurements"] == 16 and out.stat().st_size > 50_000
    flags = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-default-apps",
        "--disable-sync",
        "--no-first-run",
        "--metrics-recording-only",
        "--enable-logging=stderr",
        "--v=0",
    ]
    shot = tmp_path / "shot.png"
    res = subprocess.run(
        [*flags, "--window-size=1200,2400", f"--screenshot={shot}", out.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shot.is_file(), res.stderr[-2000:]
    console = [ln for ln in res.stderr.splitlines() if "CONSOLE" in ln or "Uncaught" in ln]
    assert console == [], console
    import matplotlib.image as mpimg

    img = mpimg.imread(str(shot))[..., :3]
    non_white = float((img.mean(axis=-1) < 0.95).mean())
    assert img.shape[0] >= 2000 and non_white > 0.02, non_white


def test_json_writes_html_only_when_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`--json` prints the numbers and leaves the working folder alone unless `-o` names a file;
    without `--json` the page goes to ./report.html."""
    monkeypatch.chdir(tmp_path)
    cli = Cli(tmp_path)
    cli("demo", "--rounds", "0")
    doc = cli.json("report", "demo-p3ht")
    assert doc["sections"]["summary"]["measurements"] > 0
    assert not (tmp_path / "report.html").exists()
    named = tmp_path / "named.html"
    cli.json("report", "demo-p3ht", "-o", named)
    assert named.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    res = cli("report", "demo-p3ht")
    assert (tmp_path / "report.html").stat().st_size > 10_000 and "report.html" in res.stdout
