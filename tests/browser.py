"""Opens a page in real headless Chromium (Debian's chromium + chromium-driver) through Selenium and reports
what a reader would hit: console errors, images that did not load, requests that left the file."""

import shutil
import tempfile

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


def available() -> bool:
    return bool(shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER))


def inspect_page(path) -> dict:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={tempfile.mkdtemp(prefix='chromium-')}"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    try:
        driver.get(f"file://{path}")
        info = driver.execute_script("""
            const imgs = Array.from(document.images);
            return {images: imgs.length,
                    broken: imgs.filter(i => !i.complete || i.naturalWidth === 0).map(i => i.alt),
                    external: performance.getEntriesByType('resource').map(r => r.name).filter(n => !n.startsWith('data:')),
                    title: document.title,
                    headings: Array.from(document.querySelectorAll('h2, h3')).map(h => h.textContent)};
        """)
        info["console_errors"] = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        return info
    finally:
        driver.quit()
