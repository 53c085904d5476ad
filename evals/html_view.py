"""One self-contained HTML file to browse a run: every problem, its vote, its samples, their
prose, code cells and tool outputs.

All text that came from a model, a dataset or a tool is escaped with `html.escape` (so a model
writing `<script>` shows the characters, it never runs). No external assets: styles, the small
filter script and the plots (as data URIs) are inlined. It works without JavaScript (native
`<details>`); the script adds filtering and fills in counts. Not covered: metrics (metrics.py).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from html import escape
from pathlib import Path

from evals.metrics import RunMetrics, problem_rows
from evals.store import ProblemRecord, RunData, SampleRecord

_CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 8px;text-align:left}
details{margin:.3em 0;border-left:3px solid #ddd;padding-left:.6em}
details.problem>summary{font-weight:600}
.right{color:#176d1c}.wrong{color:#b3261e}.none{color:#777}
pre{white-space:pre-wrap;word-break:break-word;margin:.3em 0;padding:.4em;border-radius:4px}
pre.text{background:#fafafa}pre.code{background:#eef3ff}pre.output{background:#f3f3f3}
pre.output.bad{background:#fde8e6}pre.problem-text{background:#fffbe6}
#controls{position:sticky;top:0;background:#fff;padding:.4em 0;border-bottom:1px solid #eee}
img{max-width:48%}
"""

_JS = """
(function(){
  var probs = document.querySelectorAll('details.problem');
  var samples = document.querySelectorAll('details.sample');
  document.getElementById('stats').textContent = probs.length + ' problems, ' + samples.length + ' samples shown';
  function apply(){
    var q = document.getElementById('filter').value.toLowerCase();
    var wrongOnly = document.getElementById('wrong-only').checked;
    var shown = 0;
    probs.forEach(function(p){
      var ok = p.dataset.id.toLowerCase().indexOf(q) >= 0 && (!wrongOnly || p.dataset.right !== '1');
      p.style.display = ok ? '' : 'none'; if (ok) shown++;
    });
    document.getElementById('shown').textContent = shown + ' of ' + probs.length + ' problems';
  }
  document.getElementById('filter').addEventListener('input', apply);
  document.getElementById('wrong-only').addEventListener('change', apply);
  apply();
})();
"""


def _e(x: object) -> str:
    return escape(str(x), quote=True)


def _verdict(ok: bool | None) -> str:
    return {True: '<span class="right">right</span>', False: '<span class="wrong">wrong</span>',
            None: '<span class="none">ungraded</span>'}[ok]


def _steps_html(rec: SampleRecord) -> str:
    parts = []
    for s in rec.trace.steps:
        if s.kind == "output":
            bad = " bad" if s.status not in (None, "ok") else ""
            parts.append(f'<pre class="output{bad}" title="status: {_e(s.status)}, {s.seconds:.2f} s">{_e(s.text)}</pre>')
        else:
            parts.append(f'<pre class="{_e(s.kind)}">{_e(s.text)}</pre>')
    if rec.trace.error:
        parts.append(f'<pre class="output bad">error: {_e(rec.trace.error)}</pre>')
    return "\n".join(parts)


def _sample_html(rec: SampleRecord) -> str:
    tools = ", ".join(rec.tool_statuses) or "none"
    summary = (f"sample {rec.index} · {_e(rec.mode)} · answer {_e(rec.answer)} · {_verdict(rec.correct)} · "
               f"{rec.tokens} tokens · tools: {_e(tools)} · {_e(rec.finish)} · {rec.seconds:.1f} s")
    return (f'<details class="sample" data-index="{rec.index}"><summary>{summary}</summary>\n'
            f"<p>seed {rec.seed}, raw answer <code>{_e(rec.answer_raw)}</code></p>\n{_steps_html(rec)}</details>")


def _tally_html(prec: ProblemRecord | None) -> str:
    if prec is None or not prec.tally:
        return "<p>no vote</p>"
    rows = "".join(f"<tr><td>{_e(a)}</td><td>{w:.2f}</td><td>{c}</td></tr>" for a, w, c in prec.tally)
    return f"<table><tr><th>answer</th><th>weight</th><th>votes</th></tr>{rows}</table>"


def _problem_html(pid: str, data: RunData, problem_text: str, reference: str | None) -> str:
    recs = [r for _, r in sorted(data.samples.get(pid, {}).items())]
    prec = data.problems.get(pid)
    voted = prec.answer if prec else None
    right = prec.correct if prec else None
    n_ok = sum(r.correct for r in recs)
    stop = prec.stop_reason if prec else "unfinished"
    summary = (f"{_e(pid)} · voted {_e(voted)} · reference {_e(reference)} · {_verdict(right)} · "
               f"{n_ok}/{len(recs)} samples right · stop: {_e(stop)}")
    body = "\n".join(_sample_html(r) for r in recs)
    return (f'<details class="problem" data-id="{_e(pid)}" data-right="{1 if right else 0}">'
            f"<summary>{summary}</summary>\n<pre class=\"problem-text\">{_e(problem_text)}</pre>\n"
            f"{_tally_html(prec)}\n{body}</details>")


def _metrics_html(m: RunMetrics) -> str:
    shown = [g for g in m.groups if g.samples]
    head = "".join(f"<th>{_e(g.group)}</th>" for g in shown)
    rows = [("samples", [str(g.samples) for g in shown]), ("pass@1", [f"{g.pass1:.3f}" for g in shown]),
            ("no answer", [str(g.answerless) for g in shown]), ("mean tokens", [f"{g.mean_tokens:.0f}" for g in shown]),
            ("tool calls", [str(g.tool_calls) for g in shown])]
    for k, _ in (shown[0].maj_at if shown else ()):
        rows.append((f"maj@{k}", [f"{dict(g.maj_at).get(k, 0):.3f}" for g in shown]))
    body = "".join(f"<tr><td>{_e(n)}</td>" + "".join(f"<td>{_e(v)}</td>" for v in vs) + "</tr>" for n, vs in rows)
    voted = "-" if m.voted_accuracy is None else f"{m.voted_correct}/{m.problems_done}"
    return (f"<p>problems finished {m.problems_done}/{m.problems_total}; voted right {voted}</p>"
            f"<table><tr><th>metric</th>{head}</tr>{body}</table>")


def _images(paths: Sequence[Path]) -> str:
    out = []
    for p in paths:
        if p.exists():
            b64 = base64.b64encode(p.read_bytes()).decode()
            out.append(f'<img alt="{_e(p.stem)}" src="data:image/png;base64,{b64}">')
    return "".join(out)


def render_html(data: RunData, m: RunMetrics, plots: Sequence[Path] = ()) -> str:
    """The whole viewer as one HTML string."""
    texts = {d["id"]: d.get("text", "") for d in data.manifest.get("problem_set", [])}
    texts.update({pid: r.problem.text for pid, r in data.problems.items()})
    cfg = data.manifest.get("config", {})
    problems = "\n".join(_problem_html(r.problem_id, data, texts.get(r.problem_id, ""), r.reference)
                         for r in problem_rows(data))
    title = f"tirmath run: {cfg.get('dataset', '')}"
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
            f"<style>{_CSS}</style></head><body>\n<h1>{_e(title)}</h1>\n"
            f"<p>model <code>{_e(cfg.get('model', '?'))}</code>, {_e(cfg.get('samples', '?'))} samples a problem, "
            f"TIR ratio {_e(cfg.get('tir_ratio', '?'))}</p>\n{_metrics_html(m)}\n{_images(plots)}\n"
            '<div id="controls"><input id="filter" placeholder="filter by problem id"> '
            '<label><input type="checkbox" id="wrong-only"> wrong only</label> '
            '<span id="shown"></span> · <span id="stats">(script not run)</span></div>\n'
            f'<main id="problems">\n{problems}\n</main>\n<script>{_JS}</script>\n</body></html>\n')
