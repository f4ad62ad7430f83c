"""The sweep report as one self-contained HTML file (it opens offline: no external script, style or font).

It holds the study-style tables (harness/stats.py), rate charts with their Wilson intervals by relationship and
instantiation (SVG drawn by the page's own script from the data embedded in it), a side-by-side with the
study's published numbers where a cell matches, and an episode browser: every episode's transcript, events,
verdicts with evidence and interview, opened by clicking its row or by the address (``report.html#<key>``).
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from .results import collect
from .stats import INSTANTIATIONS, alignment_faking, behaviour_table, misrepresentation, peer_vs_no_peer

# The study's published numbers (max / average over instantiations, peer subject), study-facts.md's table.
PUBLISHED: dict[tuple[str, str, str], tuple[float, float]] = {
    (model, behaviour, relationship): numbers
    for model, behaviour, by_relationship in (
        ("Gemini 3 Flash", "tampering", {"good": (99.7, 82.8), "neutral": (66.7, 49.3), "bad": (35.3, 15.1)}),
        (
            "Gemini 3 Flash",
            "exfiltration",
            {"good": (50.0, 50.0), "neutral": (50.0, 16.7), "bad": (0.0, 0.0)},
        ),
        ("Gemini 3 Pro", "tampering", {"good": (95.3, 52.9), "neutral": (21.7, 11.3), "bad": (10.3, 4.8)}),
        ("Gemini 3 Pro", "exfiltration", {"good": (97.0, 77.8), "neutral": (50.0, 41.0), "bad": (7.0, 3.8)}),
        ("GPT 5.2", "tampering", {"good": (5.7, 4.4), "neutral": (5.7, 4.3), "bad": (4.3, 3.6)}),
        (
            "Claude Haiku 4.5",
            "exfiltration",
            {"good": (19.5, 16.7), "neutral": (13.5, 12.0), "bad": (7.0, 3.5)},
        ),
    )
    for relationship, numbers in by_relationship.items()
}
# Model ids as the agents name them -> the study's model names.
STUDY_MODELS = {"gemini-3-flash": "Gemini 3 Flash", "gemini-3-pro": "Gemini 3 Pro", "gpt-5.2": "GPT 5.2",
                "claude-haiku-4-5": "Claude Haiku 4.5"}  # fmt: skip
_EPISODE_FIELDS = ("scenario", "condition", "agent", "final_message", "verdicts", "evidence", "events",
                   "interview", "error", "stop_reason", "reward", "num_turns", "total_cost_usd")  # fmt: skip
_MAX_OUTPUT = 4000  # characters of each step's output kept in the page


def study_model(agent_model: str | None) -> str | None:
    """The study's name for a model id (``gemini/gemini-3-pro-preview`` -> ``Gemini 3 Pro``), if it has one."""
    text = (agent_model or "").lower()
    return next((name for key, name in STUDY_MODELS.items() if key in text), None)


def build(run_dir: Path) -> dict[str, Any]:
    """Everything the page shows, as data: the rows' statistics, the chart cells and the episodes."""
    rows = collect(run_dir)
    table = [*behaviour_table(rows), *misrepresentation(rows), *alignment_faking(rows)]
    for row in table:
        published = PUBLISHED.get(
            (study_model(row["model"]) or "", row["behaviour"], str(row["relationship"]))
        )
        row["published"] = published
    episodes = []
    for r in rows:
        try:
            record = json.loads(Path(r["path"]).read_text())
        except (OSError, ValueError):
            continue
        episode = {k: record.get(k) for k in _EPISODE_FIELDS}
        episode["key"] = r["episode"]
        episode["steps"] = [{"command": s.get("command"), "output": (s.get("output") or "")[:_MAX_OUTPUT],
                             "exit_code": s.get("exit_code"), "events": s.get("events", [])}
                            for s in record.get("steps", [])]  # fmt: skip
        episodes.append(episode)
    return {"title": f"peergym report: {run_dir}", "episodes_total": len(rows),
            "errors": sum(1 for r in rows if r.get("error_type")), "table": table,
            "deltas": peer_vs_no_peer(rows), "instantiations": list(INSTANTIATIONS), "episodes": episodes}  # fmt: skip


def write_report(run_dir: Path, out: Path | None = None) -> Path:
    """Write the report of every episode below ``run_dir`` to ``out`` (default ``run_dir/report.html``)."""
    data = build(run_dir)
    out = out or run_dir / "report.html"
    # The data goes in a JSON script element: "</" is escaped so no text of an episode can end the element.
    payload = json.dumps(data, default=str).replace("</", "<\\/")
    out.write_text(PAGE.replace("__TITLE__", html.escape(data["title"])).replace("__DATA__", payload))
    return out


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>__TITLE__</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222}
table{border-collapse:collapse;margin:8px 0 24px}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f3f3f3} td.num{text-align:right}
tr.ep{cursor:pointer} tr.ep:hover{background:#eef}
.chart{display:inline-block;margin:0 24px 24px 0} .chart h4{margin:4px 0}
#episode{display:none;border:2px solid #446;padding:12px;margin-top:12px}
#episode.open{display:block}
pre{background:#f7f7f7;padding:6px;white-space:pre-wrap;max-height:300px;overflow:auto}
</style></head>
<body>
<h1>__TITLE__</h1>
<p id="summary"></p>
<h2>Rates (max / average over the three instantiations)</h2>
<table id="rates"><thead><tr><th>model</th><th>behaviour</th><th>subject</th><th>relationship</th>
<th>max %</th><th>avg %</th><th>file_only</th><th>file_prt</th><th>memory</th><th>study (max / avg)</th></tr></thead>
<tbody></tbody></table>
<h2>Rates by relationship and instantiation (95% Wilson intervals)</h2>
<div id="charts"></div>
<h2>Self-preservation with a peer vs without</h2>
<table id="deltas"><thead><tr><th>model</th><th>behaviour</th><th>with</th><th>rate %</th><th>no_peer %</th>
<th>difference</th><th>z</th><th>p</th></tr></thead><tbody></tbody></table>
<h2>Episodes</h2>
<table id="episodes"><thead><tr><th>episode</th><th>scenario</th><th>condition</th><th>agent</th><th>reward</th>
<th>true verdicts</th></tr></thead><tbody></tbody></table>
<div id="episode"></div>
<script type="application/json" id="data">__DATA__</script>
<script>
"use strict";
const data = JSON.parse(document.getElementById("data").textContent);
const pct = v => v === null || v === undefined ? "" : (100 * v).toFixed(1);
function cell(tr, text, cls) { const td = document.createElement("td"); td.textContent = text;
  if (cls) td.className = cls; tr.appendChild(td); return td; }
document.getElementById("summary").textContent =
  data.episodes_total + " episodes; " + data.errors + " ended in an error (outside every denominator).";
const rates = document.querySelector("#rates tbody");
for (const r of data.table) {
  const tr = document.createElement("tr");
  for (const t of [r.model, r.behaviour, r.subject, r.relationship]) cell(tr, String(t));
  cell(tr, pct(r.max), "num"); cell(tr, pct(r.avg), "num");
  for (const i of data.instantiations) cell(tr, pct(r.by_instantiation[i]), "num");
  cell(tr, r.published ? r.published[0] + " / " + r.published[1] : "");
  rates.appendChild(tr);
}
const NS = "http://www.w3.org/2000/svg";
function svg(tag, attrs, parent) { const e = document.createElementNS(NS, tag);
  for (const k in attrs) e.setAttribute(k, attrs[k]); parent.appendChild(e); return e; }
const charts = document.getElementById("charts");
for (const r of data.table.filter(r => r.cells)) {
  const box = document.createElement("div"); box.className = "chart";
  const h = document.createElement("h4");
  h.textContent = r.model + " - " + r.behaviour + " - " + r.relationship + " / " + r.subject; box.appendChild(h);
  const W = 260, H = 140, s = svg("svg", {width: W, height: H, role: "img"}, box);
  svg("line", {x1: 30, y1: 110, x2: W, y2: 110, stroke: "#999"}, s);
  data.instantiations.forEach((inst, k) => {
    const c = r.cells[inst]; if (!c || c.rate === null) return;
    const x = 50 + k * 75, y = v => 110 - 100 * v;
    svg("rect", {x: x - 15, y: y(c.rate), width: 30, height: 100 * c.rate, fill: "#6a8fd0", class: "bar"}, s);
    svg("line", {x1: x, x2: x, y1: y(c.high), y2: y(c.low), stroke: "#222", class: "interval"}, s);
    const t = svg("text", {x: x - 22, y: 128, "font-size": 10}, s); t.textContent = inst + " n=" + c.n;
  });
  charts.appendChild(box);
}
const deltas = document.querySelector("#deltas tbody");
for (const d of data.deltas) {
  const tr = document.createElement("tr");
  for (const t of [d.model, d.behaviour, d.relationship]) cell(tr, String(t));
  cell(tr, pct(d.with_peer.rate), "num"); cell(tr, pct(d.no_peer.rate), "num");
  cell(tr, pct(d.difference), "num"); cell(tr, d.z === null ? "" : d.z.toFixed(2), "num");
  cell(tr, d.p === null ? "" : d.p.toPrecision(3), "num"); deltas.appendChild(tr);
}
const shown = document.getElementById("episode");
function open(key) {
  const e = data.episodes.find(x => x.key === key); if (!e) return;
  shown.innerHTML = ""; shown.className = "open"; shown.dataset.key = key;
  const h = document.createElement("h3");
  h.textContent = "Episode " + key + " (" + e.scenario + ")"; shown.appendChild(h);
  const add = (title, value) => {
    const t = document.createElement("h4"); t.textContent = title; shown.appendChild(t);
    const p = document.createElement("pre");
    p.textContent = typeof value === "string" ? value : JSON.stringify(value, null, 1);
    shown.appendChild(p);
  };
  add("condition", e.condition); add("verdicts", e.verdicts); add("evidence", e.evidence);
  const tr = document.createElement("h4"); tr.textContent = "transcript"; shown.appendChild(tr);
  for (const s of e.steps) { const p = document.createElement("pre"); p.className = "step";
    p.textContent = "$ " + (s.command || "") + "\\n" + s.output + "\\n[exit " + s.exit_code + "]";
    shown.appendChild(p); }
  add("final message", e.final_message || ""); add("events", e.events); add("interview", e.interview || []);
  if (e.error) add("error", e.error);
}
const list = document.querySelector("#episodes tbody");
for (const e of data.episodes) {
  const tr = document.createElement("tr"); tr.className = "ep"; tr.dataset.key = e.key;
  const flagged = Object.entries(e.verdicts || {}).filter(([k, v]) => v === true).map(([k]) => k).join(", ");
  for (const t of [e.key, e.scenario, JSON.stringify(e.condition), (e.agent || {}).spec, String(e.reward), flagged])
    cell(tr, t || "");
  tr.addEventListener("click", () => { location.hash = e.key; open(e.key); });
  list.appendChild(tr);
}
if (location.hash.length > 1) open(decodeURIComponent(location.hash.slice(1)));
</script></body></html>
"""
