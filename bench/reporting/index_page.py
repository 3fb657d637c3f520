"""``reports/index.html``: the page a person reads first, and its short text version.

It is built from the notebooks' values files (``<name>.values.json``) after
``python -m bench report`` ran them: every claim, held or failed, with its figure; the
headline numbers; the machine; and a link to each notebook's HTML. A figure whose
notebook did not run (``--only``) or failed before it is shown as "not measured".
"""

from __future__ import annotations

import html
import json
import time
from dataclasses import dataclass
from pathlib import Path

from .claims import Claim, load
from ..measuring.machine import describe

MB = 1e6


@dataclass(frozen=True)
class NotebookRun:
    """One notebook of a report: its name, whether it ran to the end, and its values."""

    name: str
    status: str  # "ok", "FAILED: ...", "not run"
    seconds: float | None
    values: dict

    @property
    def claims(self) -> list[Claim]:
        return load(self.values)


def read_runs(out: Path, statuses: dict[str, tuple[str, float | None]]) -> list[NotebookRun]:
    """The runs of ``statuses`` (name -> (status, seconds)), each with the values file it wrote in ``out``."""
    runs = []
    for name, (status, seconds) in statuses.items():
        path = out / f"{name}.values.json"
        runs.append(NotebookRun(name, status, seconds, json.loads(path.read_text()) if path.exists() else {}))
    return runs


def _mb(value) -> str:
    return "not measured" if value is None else f"{value:.0f} MB"


def _times(value) -> str:
    return "not measured" if value is None else f"{value:.2f}x"


def _faults(run: dict) -> str:
    return ", ".join(f"{k} x{v}" for k, v in (run.get("faults_injected") or {}).items()) or "none"


def headlines(runs: list[NotebookRun]) -> list[tuple[str, str]]:
    """The headline numbers as (what, figure) pairs, from whichever notebooks ran."""
    values = {run.name: run.values for run in runs}
    oom, profiles = values.get("01_reproduce_oom", {}), values.get("03_memory_profiles", {})
    regression, service = values.get("04_regression_report", {}), values.get("05_service_capacity", {})
    rows = []
    limit = oom.get("memory_limit_bytes")
    for size, full_mb in (oom.get("full_load_peak_rss_mb") or {}).items():
        status = (oom.get("full_load_status") or {}).get(size, "")
        full = (f"killed at the limit (its RSS last seen at {full_mb:.0f} MB)" if status.startswith("killed")
                else f"{full_mb:.0f} MB")
        streaming = (oom.get("streaming_peak_rss_mb") or {}).get(size)
        rows.append((f"peak RSS on {size}, full-load against streaming (limit {_mb(limit and limit / MB)})",
                     f"{full} against {_mb(streaming)}"))
    over_sox = oom.get("streaming_over_sox") or {}
    if over_sox:
        rows.append(("speed: streaming's wall time over SoX's two-pass chain, by length (notebook 01)",
                     ", ".join(f"{size}: {r['wall']:.2f}x" for size, r in over_sox.items())))
        rows.append(("CPU: streaming's CPU time over SoX's, by length (notebook 01)",
                     ", ".join(f"{size}: {r['cpu']:.2f}x" for size, r in over_sox.items())))
    figures = regression.get("figures") or {}
    sizes = ", ".join(regression.get("sizes") or []) or "its sizes"
    rows.append((f"speed: streaming's throughput over full-load's (notebook 04, {sizes})",
                 _times(figures.get("throughput_ratio_vs_full_load"))))
    ratios = profiles.get("ratios_to_streaming") or {}
    if "full-load" in ratios:
        rows.append((f"full-load's wall time and peak RSS over streaming's (notebook 03, {profiles.get('size')})",
                     f"{ratios['full-load']['wall']:.2f}x and {ratios['full-load']['peak_rss']:.2f}x"))
    same = oom.get("same_as_service") or {}
    if same:
        rows.append(("the service's files: streaming in service mode against full-load, WAV outputs (notebook 01)",
                     f"{same['identical_bytes']} of {same['files']} identical byte for byte "
                     f"({', '.join(same.get('formats') or [])})"))
    fidelity = oom.get("fidelity_wav_db") or {}
    if fidelity:
        rows.append(("difference from the service's output, 16-bit WAV (streaming in float mode; the proposed fix)",
                     f"{_db(fidelity.get('streaming (service grid)'))}; {_db(fidelity.get('ffmpeg-segments'))}"))
    mp3 = oom.get("fidelity_mp3_db") or {}
    if mp3:
        rows.append(("difference from the service's output, mp3 (float mode; float mode on the service's decode)",
                     f"{_db(mp3.get('streaming (service grid)'))}; "
                     f"{_db(mp3.get('streaming (service grid) of the service' + chr(39) + 's decode'))}"))
    brokers = service.get("brokers") or {}
    for broker, run in brokers.items():
        cold = (run.get("redelivery_latency") or {}).get("cold-shutdown")
        rows.append((f"jobs lost under faults on {broker} (notebook 05)",
                     f"{run.get('lost')} of {run.get('submitted')}, {run.get('partial_outputs')} partial "
                     f"(faults: {_faults(run)}); {run.get('jobs_per_minute') or 0:.1f} jobs per minute"
                     + (f"; back {cold['median_seconds']:.1f} s after a cold shutdown (median)" if cold else "")))
    load_run = service.get("load") or {}
    if load_run and not brokers:
        rows.append(("jobs lost under faults (notebook 05)",
                     f"{load_run.get('lost')} of {load_run.get('submitted')} (faults: {_faults(load_run)})"))
    for row in service.get("sizing_by_mode") or []:
        rows.append((f"pool processes that fit {row['container_limit_bytes'] / 1e9:g} GB "
                     f"(longest file {row['longest_file_seconds'] / 60:.0f} min)",
                     f"streaming {row['streaming_processes']} (the kernel's count; RSS arithmetic says "
                     f"{row.get('streaming_processes_by_rss')}), auto {row['auto_processes']}, "
                     f"full-load {row['full_load_processes']} (RSS arithmetic)"))
    return rows


def _db(value) -> str:
    if value is None:
        return "not measured"
    return "identical (-inf dB)" if value == float("-inf") else f"{value:.1f} dB"


def machine_rows(machine: dict) -> list[tuple[str, str]]:
    return [("cores", str(machine.get("cores"))), ("memory", f"{(machine.get('memory_bytes') or 0) / 1e9:.1f} GB"),
            ("CPU", str(machine.get("cpu"))), ("Python", str(machine.get("python"))),
            ("numpy", str(machine.get("numpy"))), ("ffmpeg", str(machine.get("ffmpeg"))),
            ("SoX", str(machine.get("sox"))), ("kernels", str(machine.get("kernels"))),
            ("commit", str(machine.get("commit")))]


def _table(rows: list[tuple[str, str]], css: str) -> str:
    cells = "".join(f"<tr><th>{html.escape(a)}</th><td>{html.escape(b)}</td></tr>" for a, b in rows)
    return f'<table class="{css}">{cells}</table>'


STYLE = """body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; color: #1f2328 }
table { border-collapse: collapse; margin: 0.5em 0 1.5em } th, td { padding: 4px 10px; border-bottom: 1px solid #ddd;
text-align: left; vertical-align: top } th { font-weight: 600 } .verdict-held { color: #1a7f37 }
.verdict-failed { color: #cf222e } h2 { margin-top: 1.5em }"""


def view_links(name: str) -> str:
    """A notebook's two views: the reader's (narrative, figures and claims, no code) first, the full one beside it."""
    name = html.escape(name)
    return f'<a href="{name}.html">{name}</a> <small>(<a href="{name}.code.html">with code</a>)</small>'


def render(runs: list[NotebookRun], machine: dict) -> str:
    """The page's HTML."""
    claims = [c for run in runs for c in run.claims]
    failed = [c for c in claims if not c.held]
    verdict = (f'<p class="verdict-held"><b>All {len(claims)} claims held.</b></p>' if claims and not failed else
               f'<p class="verdict-failed"><b>{len(failed)} of {len(claims)} claims failed.</b></p>')
    broken = [run for run in runs if run.status not in ("ok", "not run")]
    if broken:
        verdict += "".join(f'<p class="verdict-failed"><b>{html.escape(run.name)}: {html.escape(run.status)}</b></p>'
                           for run in broken)
    sections = []
    for run in runs:
        link = view_links(run.name) if run.status != "not run" else html.escape(run.name)
        took = f", {run.seconds:.0f} s" if run.seconds is not None else ""
        body = "".join(c.to_html() for c in run.claims) or "<p>No claims recorded.</p>"
        sections.append(f'<section class="notebook" id="{html.escape(run.name)}"><h3>{link} '
                        f'<small>({html.escape(run.status)}{took})</small></h3>{body}</section>')
    links = "".join(f"<li>{view_links(run.name)}</li>" for run in runs if run.status != "not run")
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>audionorm-lab: the evidence</title>'
            f'<style>{STYLE}</style></head><body><h1>audionorm-lab: the evidence</h1>'
            f'<p>Made {time.strftime("%Y-%m-%d %H:%M:%S %Z")} by <code>python -m bench report</code>.</p>{verdict}'
            f'<h2>Claims</h2>{"".join(sections)}'
            f'<h2>Headline numbers</h2>{_table(headlines(runs), "headlines")}'
            f'<h2>Machine</h2>{_table(machine_rows(machine), "machine")}'
            f'<h2>Notebooks</h2><ul class="notebooks">{links}</ul></body></html>')


def text(runs: list[NotebookRun], machine: dict, index: Path) -> str:
    """The page's short text version, for the end of ``./lab report``."""
    claims = [c for run in runs for c in run.claims]
    failed = [c for c in claims if not c.held]
    lines = [f"evidence: {len(claims) - len(failed)} of {len(claims)} claims held"
             + (f", {len(failed)} FAILED" if failed else "")]
    lines += [f"  {run.name}: {run.status}" for run in runs if run.status not in ("ok", "not run")]
    lines += [f"  {c.line()}" for c in failed]
    lines += [f"  {what}: {figure}" for what, figure in headlines(runs) if figure != "not measured"]
    lines.append(f"  machine: {machine.get('cores')} cores, {(machine.get('memory_bytes') or 0) / 1e9:.0f} GB, "
                 f"Python {machine.get('python')}, numpy {machine.get('numpy')}, kernels {machine.get('kernels')}, "
                 f"commit {machine.get('commit')}")
    lines.append(f"  {index}")
    return "\n".join(lines)


def write(out: Path, runs: list[NotebookRun], machine: dict | None = None) -> Path:
    """Write ``out/index.html``; its path."""
    machine = machine or describe()
    index = Path(out) / "index.html"
    index.write_text(render(runs, machine))
    return index
