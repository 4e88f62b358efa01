"""Open an HTML file in a real headless Chromium: the DOM after its scripts ran, its console
messages, and a screenshot.

    python scripts/browser_check.py REPORT.html [--fragment eval=1] [--screenshot out.png] [--size 1280,2000]

Used by tests/test_html_browser.py and to make docs/report.png. Needs Debian's `chromium`
(apt-get install -y chromium). Console messages come from Chromium's own log
(--enable-logging=stderr: every console call and every uncaught error is an INFO:CONSOLE line);
the report's script also records uncaught errors in the DOM (data-js-error) and marks a
finished start with data-ready="1".
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--enable-logging=stderr", "--v=0", "--hide-scrollbars"]
CONSOLE = re.compile(r":CONSOLE(?:\(\d+\))?:?\d*\] (.*)")
INSTALL_HINT = "install Chromium: apt-get install -y chromium (Debian/Ubuntu), or put `chromium` on PATH"


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        if p := shutil.which(name):
            return p
    return None


@dataclass
class PageResult:
    dom: str
    console: list[str]
    screenshot: Path | None
    returncode: int


def open_page(html_file: str | Path, fragment: str = "", screenshot: str | Path | None = None,
              size: str = "1280,2000", timeout_s: float = 90) -> PageResult:
    exe = find_chromium()
    if exe is None:
        raise FileNotFoundError(INSTALL_HINT)
    url = Path(html_file).resolve().as_uri() + (f"#{fragment}" if fragment else "")
    with tempfile.TemporaryDirectory(prefix="s2d-chromium-") as profile:
        cmd = [exe, *FLAGS, f"--user-data-dir={profile}", f"--window-size={size}", "--dump-dom"]
        if screenshot:
            cmd.append(f"--screenshot={Path(screenshot).resolve()}")
        p = subprocess.run([*cmd, url], capture_output=True, text=True, timeout=timeout_s)
    console = [m.group(1) for line in p.stderr.splitlines() if (m := CONSOLE.search(line))]
    return PageResult(p.stdout, console, Path(screenshot) if screenshot else None, p.returncode)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("html")
    ap.add_argument("--fragment", default="")
    ap.add_argument("--screenshot")
    ap.add_argument("--size", default="1280,2000")
    args = ap.parse_args()
    r = open_page(args.html, args.fragment, args.screenshot, args.size)
    ready = 'data-ready="1"' in r.dom
    err = re.search(r'<html[^>]*data-js-error="([^"]*)"', r.dom)
    rows = r.dom.count('class="exrow"')
    print(f"chromium rc={r.returncode} ready={ready} console={r.console} js_error={err.group(1) if err else None} "
          f"rows={rows} screenshot={r.screenshot}")
    return 0 if ready and not err and not r.console and r.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
