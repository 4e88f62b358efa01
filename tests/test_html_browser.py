"""The HTML report opened as a person would: a real headless Chromium loads the file, runs its
script, and we read the resulting DOM, the console and a screenshot."""
import re
import sys
from pathlib import Path

import pytest
from html_run import make_run

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from browser_check import INSTALL_HINT, find_chromium, open_page  # noqa: E402

pytestmark = pytest.mark.skipif(find_chromium() is None, reason=f"no Chromium: {INSTALL_HINT}")


def _rows(dom: str, browser: str) -> list[str]:
    section = re.search(rf'id="{browser}".*?</table>', dom, re.S).group(0)
    return re.findall(r'<tr class="exrow" data-id="([^"]+)"', section)


def test_report_in_real_chromium(tmp_path):
    run = tmp_path / "run"
    make_run(run)  # model output includes '</script><script>window.PWNED=1</script>'
    shot = tmp_path / "report.png"
    r = open_page(run / "report.html", screenshot=shot, size="1280,2400")
    assert r.returncode == 0
    assert r.console == [], r.console  # no console message, no uncaught error
    assert 'data-ready="1"' in r.dom and not re.search(r'<html[^>]*data-js-error=', r.dom)  # the script ran to its end
    assert r.dom.count("<script") == 2  # the page's own two; the model's '<script>' stayed text
    assert re.search(r'<div id="plot"><svg class="plot"', r.dom) and r.dom.count('class="pt"') == 6  # 4 systems + 2 cascades
    assert _rows(r.dom, "eval-browser") == [f"eval-{i}" for i in range(8)]  # the example table, rendered
    assert len(_rows(r.dom, "cur-browser")) == 12
    assert shot.is_file() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000

    # filters, chosen through the page's URL fragment: every distilled answer is right in this run
    r = open_page(run / "report.html", fragment="eval=2&cur=2")
    assert r.console == [] and 'data-ready="1"' in r.dom
    assert _rows(r.dom, "eval-browser") == []  # "distilled wrong"
    assert "0 of 8" in r.dom
    n_rejected = sum(1 for _ in open(run / "curate" / "rejects.jsonl"))
    assert len(_rows(r.dom, "cur-browser")) == n_rejected  # "rejected"
    r = open_page(run / "report.html", fragment="eval=3")
    assert len(_rows(r.dom, "eval-browser")) == 8  # System 1 (always wrong here) wrong, distilled right

    # an example opened: its System 2 samples with reasoning; the model's markup shows as text
    r = open_page(run / "report.html", fragment="eval-open=eval-2")
    detail = re.search(r'<tr class="detail">.*?</tr>', r.dom, re.S).group(0)
    assert detail.count("System 2 sample ") == 3 and "Step one. Step two." in detail
    assert "&lt;/script&gt;&lt;script&gt;window.PWNED=1&lt;/script&gt;&lt;b&gt;bold&lt;/b&gt;" in detail
    assert r.dom.count("<script") == 2 and "<b>bold" not in r.dom and r.console == []


def test_checker_sees_script_errors(tmp_path):
    """The console check can fail: a page with an uncaught error is caught."""
    bad = tmp_path / "bad.html"
    bad.write_text("<!doctype html><html><body><script>console.error('boom'); notDefined();</script></body></html>")
    r = open_page(bad)
    assert any("boom" in m for m in r.console) and any("notDefined" in m for m in r.console)


LAYOUT_PROBE = """<script>
(function () {
  var t = document.getElementById('systems'), box = t.parentElement, r = t.getBoundingClientRect();
  var v = document.querySelector('#verdict');
  document.documentElement.setAttribute('data-layout', JSON.stringify({
    view: document.documentElement.clientWidth, page: document.documentElement.scrollWidth,
    table_right: r.right, table_w: r.width, box_w: box.clientWidth, box_scroll: box.scrollWidth,
    verdict_ps: v ? v.querySelectorAll('p').length : 0}));
})();
</script>"""


def _layout(tmp_path: Path, width: int) -> dict:
    import html
    import json

    run = tmp_path / "run"
    if not (run / "report.html").is_file():
        make_run(run)
    page = tmp_path / f"probe{width}.html"  # the report with a probe that writes its layout into the DOM
    page.write_text((run / "report.html").read_text().replace("</body>", LAYOUT_PROBE + "</body>"))
    r = open_page(page, size=f"{width},1600")
    m = re.search(r'data-layout="([^"]+)"', r.dom)
    assert m, r.dom[:500]
    return json.loads(html.unescape(m.group(1)))


@pytest.mark.parametrize("width", [1280, 390])
def test_report_fits_its_page(tmp_path, width):
    """At a desktop width the system table is whole (beside the plot or below it, never clipped); at a
    phone width the page itself does not scroll sideways (a wide table scrolls inside its own box)."""
    lay = _layout(tmp_path, width)
    assert lay["page"] <= lay["view"], lay  # nothing sticks out of the page
    if width >= 1000:
        assert lay["box_scroll"] <= lay["box_w"] + 1 and lay["table_right"] <= lay["view"], lay  # every column shown
    assert lay["verdict_ps"] >= 1


def test_verdict_sentences_do_not_run_together(tmp_path):
    from s2distill.html_report import _verdict

    html = _verdict({"verdict": {"decision": "ship", "line": "distilled at 7.9 vs 48.0 tokens", "token_saving": 0.836}})
    assert "tokens.</p>" in html and '<p class="saving">Token saving: 83.6%.</p>' in html
