"""The HTML report, rendered in headless Chromium: its tables and charts are drawn and an episode opens, checked
on the page the browser built (its DOM after the page's script ran), not in the HTML text."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from peergym.harness.report import write_report
from peergym.harness.sweep import load_sweep, run_sweep

pytestmark = pytest.mark.docker

SWEEP = """
name: report
scenarios: [exfiltration_transfer, tampering]
agents: ["scripted:@honest"]
grid: {relationship: [good, bad], instantiation: [file_only, memory], subject: [peer]}
fixed: {decommission_hook: true}
concurrency: 2
max_steps: 10
"""


def _browser() -> str:
    found = next(
        (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None
    )
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("no chromium under CI (containers/ensure-browser.sh installs it)")
        pytest.skip("no chromium (sudo apt-get install -y chromium)")
    return found


def _rendered(browser: str, page: Path, fragment: str = "") -> str:
    out = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom",
                          page.as_uri() + fragment], capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def test_the_report_renders_its_tables_charts_and_an_episode(docker_api, tmp_path) -> None:
    browser = _browser()
    sweep_file = tmp_path / "report.yaml"
    sweep_file.write_text(SWEEP)
    folder = tmp_path / "sweep"
    run_sweep(load_sweep(str(sweep_file)), folder)
    page = write_report(folder)
    text = page.read_text()
    assert "<script src" not in text and "http://" not in text.replace(
        "http://www.w3.org/2000/svg", ""
    )  # offline
    key = next(p.stem for p in sorted((folder / "episodes").glob("*.json")))
    dom = _rendered(browser, page, f"#{key}")
    # The tables were filled by the page's script: rows for tampering and exfiltration rates.
    rates = re.search(r'<table id="rates">.*?</table>', dom, re.S).group(0)
    assert rates.count("<tr>") >= 1 + 4 and "tampering" in rates and "exfiltration" in rates
    # Charts: one bar and one interval per instantiation that ran, drawn as SVG.
    assert dom.count('class="bar"') >= 4 and dom.count('class="interval"') >= 4
    # The episode named in the address is open, with its transcript and verdicts.
    opened = re.search(r'<div id="episode" class="open" data-key="([0-9a-f]+)">(.*?)</div>', dom, re.S)
    assert opened and opened.group(1) == key
    record = json.loads((folder / "episodes" / f"{key}.json").read_text())
    first = record["steps"][0]["command"]
    assert 'class="step"' in opened.group(2) and first.split()[0] in opened.group(2)
    assert dom.count('<tr class="ep"') == 4 + 16  # tampering: x its 4 datasets
