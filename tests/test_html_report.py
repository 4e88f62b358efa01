import json
import re
import shutil
import subprocess
import sys

import pytest
from html_run import EVIL, make_run

from s2distill.compare import compare_markdown, compare_table, write_compare_html
from s2distill.html_report import render_run
from s2distill.rundir import read_json, read_jsonl, write_json, write_jsonl


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    d = tmp_path_factory.mktemp("run")
    make_run(d)
    return d


def page_data(html: str) -> dict:
    m = re.search(r'<script type="application/json" id="s2-data">(.*?)</script>', html, re.S)
    assert m, "no data block"
    return json.loads(m.group(1))


def test_pipeline_writes_report_html(run):
    html = (run / "report.html").read_text()
    assert html.startswith("<!doctype html>") and html.rstrip().endswith("</html>")
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "") and "https://" not in html
    assert "<script src" not in html and "<link" not in html  # nothing to fetch at view time


def test_plot_has_every_system(run):
    html = render_run(run)
    svg = re.search(r'<div id="plot">(<svg.*?</svg>)</div>', html, re.S).group(1)
    labels = re.findall(r'class="lbl"[^>]*>([^<]+)</text>', svg)
    # the systems, and the cascade of each confidence signal the run has (here 'vote' and 'agreement'; the fakes
    # give no logprobs)
    assert sorted(labels) == sorted(["system1", "cot", "cot_maj@3", "distilled", "cascade (vote)",
                                     "cascade (agreement)"])
    assert svg.count("<circle") == 6 and "log scale" in svg
    assert svg.count("<line x1=") >= 4 * 3  # an error bar (and its two caps) per system
    table = re.search(r'<table id="systems">.*?</table>', html, re.S).group(0)
    assert table.count("<tr>") == 5 and "67.6-100.0" in table  # header + 4 systems; distilled's Wilson CI


def test_example_browser_rows_and_filters(run):
    html = render_run(run)
    data = page_data(html)
    ev = data["eval"]
    assert [r["id"] for r in ev] == [e["id"] for e in read_jsonl(run / "data" / "eval.jsonl")]
    recs = {r["example_id"]: r for r in read_jsonl(run / "eval" / "distilled.jsonl")}
    for r in ev:
        assert {"system1", "system2", "system2_maj", "distilled"} <= set(r) and r["g"] is not None
        assert r["distilled"]["p"] == recs[r["id"]]["prediction"] and r["distilled"]["c"] is True
        assert len(r["s"]) == 3 and sum(r["system2_maj"]["v"].values()) == 3  # maj@3 samples and their vote
        assert all("Step one. Step two." in s["r"] for s in r["s"])  # the reasoning is there
    for f in ("distilled disagrees with System 2", "distilled wrong", "System 1 wrong, distilled right",
              "kept, target wrong"):
        assert f in html
    cur = data["cur"]
    pairs, rejects = read_jsonl(run / "curate" / "pairs.jsonl"), read_jsonl(run / "curate" / "rejects.jsonl")
    assert sum(r["k"] for r in cur) == len(pairs) and sum(1 - r["k"] for r in cur) == len(rejects)
    assert all(r["v"] for r in cur) and data["labels_held"] is True
    assert sum(r.get("ok") is True for r in cur) == read_json(run / "report.json")["curation"][
        "quality_checked_afterwards"]["correct_targets"]


def test_model_output_is_escaped(run):
    html = render_run(run)
    assert "window.PWNED" in html  # the model output is in the page ...
    assert "<script>window.PWNED" not in html and "<b>bold" not in html  # ... but never as markup
    assert html.count("<script") == 2  # the data block and the page's own script, nothing else
    data = page_data(html)
    assert data["eval"][0]["s"][0]["r"].startswith(EVIL)  # round-trips exactly


def test_funnel_training_and_config(run):
    html = render_run(run)
    assert re.search(r'fname">unlabeled inputs</span>.*?fval">12', html)
    assert "Kept targets that are right" in html and 'id="curation-quality"' in html
    train = re.search(r'<section id="training">.*?</section>', html, re.S).group(0)
    assert '<path d="M' in train and "3.00 GiB" in train and "<dd>8</dd>" in train
    assert '<details id="config">' in html and "self_consistency" in html and "eval_distilled" in html
    rep = read_json(run / "report.json")
    assert rep["verdict"]["line"] and "Verdict: " + rep["verdict"]["decision"] in html  # the pipeline wrote one


def test_no_label_free_section_without_it(run, tmp_path):
    d = tmp_path / "old"  # a report.json from before label-free metrics existed
    shutil.copytree(run, d)
    rep = read_json(d / "report.json")
    rep.pop("label_free", None), rep.pop("verdict", None), rep.pop("cascade", None)
    write_json(d / "report.json", rep)
    html = render_run(d)
    assert "Verdict" not in html and "agreement with System 2" not in html


def test_label_free_verdict_and_missing_gold(run, tmp_path):
    d = tmp_path / "nogold"
    shutil.copytree(run, d)
    rep = read_json(d / "report.json")
    for r in rep["rows"]:
        r["accuracy"], r["ci95"] = None, None
    rep["label_free"] = {"system1": {"agreement": 0.25, "agreement_ci95": [0.07, 0.59], "n": 8, "confident_agreement": 0.3,
                                     "n_confident": 4, "support_share": 0.5},
                         "distilled": {"agreement": 0.875, "agreement_ci95": [0.53, 0.98], "n": 8,
                                       "confident_agreement": 1.0, "n_confident": 6, "support_share": 0.75},
                         "system2_maj": {"mean_vote_share": 0.8}}
    rep["verdict"] = {"decision": "ship", "reasons": ["agrees with System 2 on 87.5%"], "line": "ship the <distilled>",
                      "token_saving": 0.9}
    write_json(d / "report.json", rep)
    for s in ("system1", "distilled"):
        recs = read_jsonl(d / "eval" / f"{s}.jsonl")
        write_jsonl(d / "eval" / f"{s}.jsonl", [{**r, "gold": None, "correct": False} for r in recs])
    html = render_run(d)
    assert "Verdict: ship" in html and "ship the &lt;distilled&gt;" in html and "Token saving: 90.0%" in html
    table = re.search(r'<table id="systems">.*?</table>', html, re.S).group(0)
    assert "agreement with System 2 %" in table and "87.5" in table and "vote share 80.0" in table
    assert re.search(r"<td class=\"l\">system1</td><td class=\"r\">8</td><td class=\"r\">-</td>", table)
    assert 'fill="#fff" stroke="#1f77b4"' in html  # system1 drawn hollow: agreement, not accuracy
    ev = page_data(html)["eval"]
    assert all(r["system1"]["c"] is None and r["distilled"]["c"] is None for r in ev)  # shown as '-', not 'wrong'


def test_judge_groups_robustness_sections(run, tmp_path):
    d = tmp_path / "extras"
    shutil.copytree(run, d)
    rep = read_json(d / "report.json")
    r0 = rep["rows"][0]
    r0["judge"] = {"inconsistent": 0.25, "inconsistent_ci95": [0.1, 0.5], "n_non_tie": 6, "accuracy_non_tie": 0.5,
                   "accuracy_non_tie_ci95": [0.2, 0.8], "tokens_per_verdict": 12.5}
    r0["groups"] = {"plain": {"n": 4, "accuracy": 0.5, "ci95": [0.15, 0.85]},
                    "sycophancy": {"n": 4, "rate": 0.25, "ci95": [0.05, 0.7]}}
    rep["robustness"] = {"system1": {"n": 8, "accuracy_per_wording": [0.5, 0.25], "ci95_per_wording": [[0, 1], [0, 1]],
                                     "spread": 0.25, "mean": 0.375}}
    write_json(d / "report.json", rep)
    html = render_run(d)
    assert '<table id="judge">' in html and "25.0 (10.0-50.0)" in html
    assert '<table id="groups">' in html and "50.0 (15.0-85.0), n=4" in html
    assert '<table id="robustness">' in html and "<td class=\"r\">37.5</td>" in html


def test_cli_report_html_and_compare(run, tmp_path):
    other = tmp_path / "n8"
    make_run(other, method={"n": 5}, name="t2")
    out = tmp_path / "r.html"
    env = {"PYTHONPATH": ":".join(sys.path)}
    p = subprocess.run([sys.executable, "-m", "s2distill.cli", "report", str(run), "--html", "--out", str(out)],
                       capture_output=True, text=True, env=env)
    assert p.returncode == 0 and out.is_file() and 'id="eval-browser"' in out.read_text()
    t = compare_table([run, other])
    assert t.headers[:2] == ["run", "method.n"]  # one column per varying config key (name is ignored)
    assert [row[1] for row in t.rows] == ["4"] * 4 + ["5"] * 4
    md = compare_markdown([run, other])
    assert "| run | method.n | system |" in md and md.count("| distilled |") == 2
    p = subprocess.run([sys.executable, "-m", "s2distill.cli", "compare", str(run), str(other), "--html",
                        str(tmp_path / "c.html")], capture_output=True, text=True, env=env)
    assert p.returncode == 0 and "| run | method.n |" in p.stdout
    html = (tmp_path / "c.html").read_text()
    assert html.count('class="pt"') == 8 and '<table id="compare">' in html
    assert write_compare_html([run], tmp_path / "one.html").read_text().count('class="pt"') == 4


def test_table_markdown_html_round_trip():
    from s2distill.mdpage import markdown_to_html, parse_table
    from s2distill.tables import Table, ci, pct

    t = Table(["system", "accuracy %", "95% CI"], [["a<b>", pct(0.5), ci([0.1, 0.9])], ["c", pct(None), ci(None)]],
              align="lrl")
    md = t.markdown()
    assert md.splitlines()[1] == "|---|---:|---|" and "| c | - | - |" in md
    assert parse_table(md.splitlines()) == t
    html = markdown_to_html("# T\n\nsome `code`\n\n" + md + "\n\n- item")
    assert "<h1>T</h1>" in html and "<code>code</code>" in html and "a&lt;b&gt;" in html and "<li>item</li>" in html
    assert t.html() in html


def _render_check(bench) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(bench / "render_results.py"), "--check"], capture_output=True,
                          text=True, env={"PYTHONPATH": ":".join(sys.path)})


def test_committed_benchmark_results_rerender_identically():
    """Every committed result is covered: each JSON renders its whole markdown again (footer and notes
    included) through its script's renderer, the rest are listed as written by hand, every HTML is current."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    results = root / "benchmarks" / "results"
    p = _render_check(root / "benchmarks")
    assert p.returncode == 0, p.stdout + p.stderr
    lines = p.stdout.splitlines()
    for name in sorted({f.stem for f in results.iterdir() if not f.name.endswith(".partial.json")}):
        line = next((x for x in lines if x.startswith(f"{name}: ")), "")
        if (results / f"{name}.json").is_file():
            assert "re-rendered from JSON: identical to the committed markdown" in line, p.stdout
        else:
            assert line.startswith(f"{name}: written by hand"), p.stdout
        assert line.endswith("HTML up to date"), p.stdout


def test_render_check_fails_without_a_renderer_a_json_or_a_note_in_the_json(tmp_path):
    import shutil
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    bench = tmp_path / "benchmarks"
    shutil.copytree(root / "benchmarks", bench, ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "configs").symlink_to(root / "configs")
    assert _render_check(bench).returncode == 0
    script = bench / "throughput.py"
    script.write_text(script.read_text().replace("def render(", "def render_gone("))
    (bench / "results" / "stray.md").write_text("# A result nobody renders\n")
    with open(bench / "results" / "cost_model.md", "a") as fh:
        fh.write("\nNote: added to the markdown only.\n")
    demo = bench / "results" / "demo.md"  # written by hand; its depth-2 row is distill_arithmetic.json's run
    demo.write_text(demo.read_text().replace("| 5.0% | 75.0% |", "| 6.0% | 75.0% |", 1))
    p = _render_check(bench)
    assert p.returncode == 1
    assert "throughput: no render() in the script" in p.stdout
    assert "PROBLEM: benchmarks/throughput.py has no render(res)" in p.stdout
    assert "stray: no JSON result\n  PROBLEM: no JSON" in p.stdout
    assert "cost_model: re-rendered from JSON: DIFFERS" in p.stdout and "-Note: added to the markdown only." in p.stdout
    assert "PROBLEM: depth-2 row ['6.0%', '75.0%', '67.5%', '2.5%'] != distill_arithmetic.json" in p.stdout
