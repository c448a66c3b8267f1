"""The report opens in headless Chromium: every plot image loads, no console error, no network request.

Needs Debian's `chromium` (`make test` installs it with apt-get when absent) and the `playwright`
Python package (a dev dependency; its own browser download is not used)."""

import importlib.util
import os
import shutil

import numpy as np
import pytest
from fakes import fake_run

from graft.cli import main


def _browser():
    """Skip only where the browser cannot be had (no apt-get); where it can, a missing one is a failure."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        if shutil.which("apt-get") is None:
            pytest.skip("no chromium and no apt-get to install it: the HTML report is not browser-tested here")
        pytest.fail("chromium is not installed: run `make test`, which installs Debian's chromium with apt-get")
    if importlib.util.find_spec("playwright") is None:
        if not os.environ.get("CI"):
            pytest.skip("the playwright package (a dev dependency) is not installed: pip install -e .[dev]")
        pytest.fail("playwright is missing on CI: `make test` installs the dev dependencies")
    from playwright import sync_api

    return chromium, sync_api


def test_report_renders_offline_in_headless_chromium(tmp_path, capsys):
    chromium, sync_api = _browser()
    rng = np.random.default_rng(0)
    for name, level in (("base", 0.3), ("tuned", 0.5)):
        for seed in range(3):
            evals = {s: float(np.clip(level + rng.normal(0, 0.05), 0, 1)) for s in (3, 7, 11)}
            fake_run(tmp_path / "runs", name, seed, level, curve=np.clip(level + rng.normal(0, 0.05, 12), 0, 1),
                     eval_curve=evals)
    report = tmp_path / "report.html"
    assert main(["report", str(tmp_path / "runs"), "--out", str(report)]) == 0
    capsys.readouterr()

    errors, requests = [], []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: requests.append(r.url))
        page.goto(report.as_uri(), wait_until="load")
        images = page.evaluate(
            "Array.from(document.images).map(i => ({alt: i.alt, done: i.complete, w: i.naturalWidth}))")
        title = page.title()
        browser.close()
    assert title == "graft report"
    assert len(images) >= 7, images  # eval curve; reward, accuracy, length, entropy, KL, SFT share, SFT loss
    assert images[0]["alt"] == "held-out greedy accuracy"
    assert all(img["done"] and img["w"] > 0 for img in images), images
    assert errors == []
    # the page itself is the only request: images are data URIs, nothing is fetched
    assert [u for u in requests if not u.startswith("data:")] == [report.as_uri()]
