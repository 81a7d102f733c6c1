"""`ssd report`: refuses what is not a run; renders in real headless Chromium with every image and no console
error (slow: needs Debian's chromium and chromium-driver, which CI installs)."""

import base64

import browser
import pytest
from conftest import ssd


def test_report_refuses_a_directory_that_is_not_a_run(tmp_path):
    r = ssd("report", tmp_path)
    assert r.returncode == 2 and "not a run directory" in r.stderr and not (tmp_path / "report.html").exists()
    r = ssd("report", tmp_path / "missing")
    assert r.returncode == 2 and "run directory not found" in r.stderr


@pytest.mark.slow
def test_demo_report_renders_in_chromium(tmp_path, quick_demo):
    if not browser.available():
        pytest.fail("needs /usr/bin/chromium and /usr/bin/chromedriver (apt-get install chromium chromium-driver)")
    out, _ = quick_demo
    page = browser.inspect_page(out / "report.html")
    assert page["console_errors"] == [] and page["broken"] == [] and page["external"] == []
    assert page["images"] == 10 and page["title"] == "SSD run report: demo"
    for heading in ("Evaluation", "Testbed diagnostics", "Lock and fork positions", "Samples and filter", "Training"):
        assert heading in page["headings"]

    # the check can fail: a damaged image and a script error are both caught
    broken = tmp_path / "broken.html"
    png = base64.b64encode(b"not a png" + (out / "report_files" / "lengths.png").read_bytes()[9:]).decode()
    broken.write_text(f"<!DOCTYPE html><html><head><title>x</title></head><body><img alt='cut' "
                      f"src='data:image/png;base64,{png}'><script>undefinedFunction()</script></body></html>")
    bad = browser.inspect_page(broken)
    assert bad["broken"] == ["cut"] and any("undefinedFunction" in e for e in bad["console_errors"])
