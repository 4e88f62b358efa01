"""The CSS and the script inlined into every HTML report (no external asset, no network).

The script only ever inserts model output with ``textContent`` (never as HTML), renders one
page of rows at a time, and builds an example's details when it is opened.
"""

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;max-width:1280px;padding:12px 20px;
color:#222;background:#fafafa}
h1{font-size:21px;margin:6px 0}h2{font-size:17px;margin:22px 0 8px;border-bottom:1px solid #ddd;padding-bottom:3px}
h3{font-size:14px;margin:14px 0 6px}
.note{color:#666;font-size:12.5px}code{background:#eee;padding:0 3px;border-radius:3px}
table{border-collapse:collapse;font-size:13px;background:#fff}th,td{border:1px solid #ddd;padding:3px 7px;vertical-align:top}
th{background:#f0f0f0}td.r,th.r{text-align:right}td.r,#systems td,#compare td{white-space:nowrap}td.l,th.l{text-align:left}
.row{display:flex;flex-wrap:wrap;gap:22px;align-items:flex-start}.row>div:first-child{flex:0 0 auto;max-width:100%}
.row>div+div{flex:1 1 auto;max-width:100%;overflow-x:auto}
svg.plot{max-width:100%;height:auto}svg .tick{font-size:11px;fill:#555}svg .axis{font-size:12px;fill:#333}
svg .lbl{font-size:12px;font-weight:600}
.verdict{border-left:5px solid #888;background:#fff;padding:4px 14px}.verdict.ship{border-color:#2ca02c}
.verdict.keep{border-color:#d62728}.verdict.cascade{border-color:#1f77b4}.verdict.no_answer{border-color:#999}.verdict h2{border:0;margin:8px 0 2px}
.funnel{max-width:760px;overflow-x:auto}.frow{display:flex;align-items:center;gap:8px;margin:3px 0}
.fname{width:190px;flex:none;text-align:right;color:#444}.fbar{height:16px;background:#1f77b4;border-radius:2px;flex:none}
.fbar.kept{background:#2ca02c}.fbar.rej{background:#d62728}.fval{white-space:nowrap;color:#333}
dl.facts{display:grid;grid-template-columns:auto auto;gap:2px 14px;margin:0}dl.facts dt{color:#666}dl.facts dd{margin:0}
.bar{display:flex;gap:8px;align-items:center;margin:6px 0;flex-wrap:wrap}.bar input{width:260px}.bar .info{color:#555}
.browser{overflow-x:auto}.scroll{overflow-x:auto;max-width:100%}table.ex{width:100%}table.ex tr.exrow{cursor:pointer}table.ex tr.exrow:hover{background:#f3f7ff}
td.ok{background:#e6f4e6}td.bad{background:#fbe4e4}td.na{color:#666}
tr.detail>td{background:#fcfcf4}pre{white-space:pre-wrap;word-break:break-word;margin:2px 0 8px;background:#fff;
border:1px solid #e4e4e4;padding:5px 7px;max-height:260px;overflow:auto;font-size:12.5px}
.smp{margin-left:8px}.tag{display:inline-block;padding:0 5px;border-radius:3px;background:#eee;margin-right:4px}
details#config{margin:22px 0}details#config summary{cursor:pointer;font-weight:600;font-size:16px}
"""

JS = r"""
(function () {
  "use strict";
  window.addEventListener("error", function (e) {
    document.documentElement.setAttribute("data-js-error", String(e.message || e));
  });
  var D = JSON.parse(document.getElementById("s2-data").textContent);
  var PAGE = 50;
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function show(v) { return v === null || v === undefined ? "-" : String(v); }
  function mark(c) { return c === true ? "ok" : c === false ? "bad" : "na"; }
  function short(s, n) { s = show(s); return s.length > n ? s.slice(0, n) + "…" : s; }
  function votes(v) {
    if (!v) return "-";
    return Object.keys(v).map(function (k) { return k + " ×" + v[k]; }).join(", ");
  }
  function block(parent, title, text) {
    parent.appendChild(el("h4", null, title));
    parent.appendChild(el("pre", null, show(text)));
  }

  function Browser(root, o) {
    var st = {f: 0, q: "", page: 0}, shown = [];
    var bar = el("div", "bar"), sel = el("select", "filter"), search = el("input", "search");
    o.filters.forEach(function (f, i) { var op = el("option", null, f[0]); op.value = String(i); sel.appendChild(op); });
    search.type = "search"; search.placeholder = "search id, question, answers";
    var prev = el("button", "prev", "‹ prev"), next = el("button", "next", "next ›"), info = el("span", "info");
    [sel, search, prev, info, next].forEach(function (x) { bar.appendChild(x); });
    var table = el("table", "ex"), thead = el("thead"), htr = el("tr"), tbody = el("tbody");
    o.columns.forEach(function (c) { htr.appendChild(el("th", null, c.h)); });
    thead.appendChild(htr); table.appendChild(thead); table.appendChild(tbody);
    root.appendChild(bar); root.appendChild(table);
    root.appendChild(el("p", "note", "Click a row for its details (reasoning, samples, vote)."));
    function compute() {
      var f = o.filters[st.f][1], q = st.q.toLowerCase();
      shown = o.rows.filter(function (r) { return f(r) && (!q || o.text(r).toLowerCase().indexOf(q) >= 0); });
    }
    function render() {
      var pages = Math.max(1, Math.ceil(shown.length / PAGE));
      if (st.page >= pages) st.page = pages - 1;
      info.textContent = shown.length + " of " + o.rows.length + " · page " + (st.page + 1) + " of " + pages;
      prev.disabled = st.page === 0; next.disabled = st.page >= pages - 1;
      tbody.textContent = "";
      shown.slice(st.page * PAGE, (st.page + 1) * PAGE).forEach(function (r) {
        var tr = el("tr", "exrow"), det = null;
        tr.setAttribute("data-id", r.id);
        o.columns.forEach(function (c) { var v = c.f(r); tr.appendChild(el("td", v[1] || "", v[0])); });
        tbody.appendChild(tr);
        tr.addEventListener("click", function () {
          if (det) { det.parentNode.removeChild(det); det = null; return; }
          det = el("tr", "detail");
          var td = el("td"); td.colSpan = o.columns.length; td.appendChild(o.detail(r)); det.appendChild(td);
          tr.parentNode.insertBefore(det, tr.nextSibling);
        });
      });
    }
    sel.addEventListener("change", function () { st.f = +sel.value; st.page = 0; compute(); render(); });
    search.addEventListener("input", function () { st.q = search.value; st.page = 0; compute(); render(); });
    prev.addEventListener("click", function () { st.page -= 1; render(); });
    next.addEventListener("click", function () { st.page += 1; render(); });
    var m = location.hash.match(new RegExp("[#&]" + o.key + "=(\\d+)(?:,(\\d+))?"));  // e.g. #eval=2,1: filter 2, page 2
    if (m && o.filters[+m[1]]) { st.f = +m[1]; sel.value = m[1]; st.page = m[2] ? +m[2] : 0; }
    compute(); render();
    var op = location.hash.match(new RegExp("[#&]" + o.key + "-open=([^&]+)"));  // e.g. #eval-open=eval-3
    if (op) Array.prototype.forEach.call(tbody.querySelectorAll("tr.exrow"), function (tr) {
      if (tr.getAttribute("data-id") === decodeURIComponent(op[1])) tr.click();
    });
  }

  var N = D.names || {};
  var ORDER = D.order || [], VOTES = D.votes || [], REF = D.ref || [];  // the System table, in report order
  function s2(r) { for (var i = 0; i < REF.length; i++) if (r[REF[i]]) return r[REF[i]]; return null; }
  var evCols = [{h: "id", f: function (r) { return [r.id]; }},
                {h: "question", f: function (r) { return [short(r.q, 140), "l"]; }},
                {h: "gold", f: function (r) { return [show(r.g)]; }}];
  ORDER.forEach(function (s) {
    if (!D.has[s]) return;
    evCols.push({h: N[s] || s, f: function (r) {
      var c = r[s]; if (!c) return ["-", "na"];
      var t = show(c.p);
      if (VOTES.indexOf(s) >= 0 && c.v && c.p !== null && c.p !== undefined) {
        var tot = 0; Object.keys(c.v).forEach(function (k) { tot += c.v[k]; });
        t += " (" + (c.v[c.p] || 0) + "/" + tot + ")";
      }
      return [t, mark(c.c)];
    }});
  });
  function evDetail(r) {
    var d = el("div");
    block(d, "Question", r.q);
    d.appendChild(el("p", null, "Gold: " + show(r.g)));
    ORDER.forEach(function (s) {
      var c = r[s]; if (!c || VOTES.indexOf(s) >= 0) return;
      block(d, (N[s] || s) + ": answer " + show(c.p) + " · " + show(c.t) + " tokens" +
               (c.c === true ? " · right" : c.c === false ? " · wrong" : ""), c.r);
    });
    VOTES.forEach(function (s) {
      if (r[s]) d.appendChild(el("p", null, "Vote (" + (N[s] || s) + "): " + votes(r[s].v) + " → " + show(r[s].p)));
    });
    (r.s || []).forEach(function (x, j) {
      var w = el("div", "smp");
      block(w, "System 2 sample " + (j + 1) + ": answer " + show(x.a) + " · " + show(x.t) + " tokens", x.r);
      d.appendChild(w);
    });
    return d;
  }
  function evText(r) {
    var parts = [r.id, r.q, r.g];
    ORDER.forEach(function (s) { if (r[s]) parts.push(r[s].p); });
    return parts.map(show).join(" ");
  }
  var evFilters = [["all", function () { return true; }],
    ["distilled disagrees with System 2", function (r) { return !!(r.distilled && s2(r) && r.distilled.p !== s2(r).p); }],
    ["distilled wrong", function (r) { return !!(r.distilled && r.distilled.c === false); }],
    ["System 1 wrong, distilled right", function (r) {
      return !!(r.system1 && r.distilled && r.system1.c === false && r.distilled.c === true); }]];
  var evRoot = document.getElementById("eval-browser");
  if (evRoot) Browser(evRoot, {key: "eval", rows: D.eval, columns: evCols, filters: evFilters, detail: evDetail, text: evText});

  var curCols = [{h: "id", f: function (r) { return [r.id]; }},
                 {h: "question", f: function (r) { return [short(r.q, 140), "l"]; }},
                 {h: "status", f: function (r) { return r.k ? ["kept", "ok"] : ["rejected: " + r.why, "bad"]; }},
                 {h: "target", f: function (r) { return [r.k ? short(r.tg, 60) : "-"]; }},
                 {h: "votes", f: function (r) { return [votes(r.v)]; }},
                 {h: "agreement", f: function (r) {
                   return [r.ag === undefined || r.ag === null ? "-" : (100 * r.ag).toFixed(0) + "%"]; }}];
  if (D.labels_held) curCols.push({h: "target right (checked afterwards)", f: function (r) {
    return r.ok === undefined ? ["-", "na"] : [r.ok ? "yes" : "no", mark(r.ok)]; }});
  function curDetail(r) {
    var d = el("div");
    block(d, "Question", r.q);
    d.appendChild(el("p", null, (r.k ? "Kept, target: " + show(r.tg) : "Rejected: " + r.why) + " · votes: " + votes(r.v)));
    if (r.g !== undefined) d.appendChild(el("p", null, "Held-back label (never shown to the curator): " + show(r.g)));
    (r.s || []).forEach(function (x, j) {
      var w = el("div", "smp"); block(w, "System 2 sample " + (j + 1) + ": answer " + show(x.a), x.r); d.appendChild(w);
    });
    return d;
  }
  var curFilters = [["all", function () { return true; }], ["kept", function (r) { return !!r.k; }],
                    ["rejected", function (r) { return !r.k; }]];
  if (D.labels_held) curFilters.push(["kept, target wrong", function (r) { return !!r.k && r.ok === false; }]);
  var curRoot = document.getElementById("cur-browser");
  if (curRoot) Browser(curRoot, {key: "cur", rows: D.cur, columns: curCols, filters: curFilters, detail: curDetail,
    text: function (r) { return [r.id, r.q, r.tg, r.why].map(show).join(" "); }});
  document.body.setAttribute("data-ready-ms", String(Math.round(performance.now())));
  document.body.setAttribute("data-ready", "1");
})();
"""
