"""python -m bench report: execute the five notebooks with papermill into reports/, as .ipynb and HTML (twice).

    python -m bench report [--params FILE] [--out reports] [--only 04_regression_report]

``--params`` is a JSON file mapping a notebook's name to the parameters to inject,
e.g. ``{"01_reproduce_oom": {"sizes": "1m,5m"}}``. Each notebook's HTML is written twice: ``<name>.html``,
the reader's view (narrative, tables, figures and claims, no code), and ``<name>.code.html``, the full view with
every code cell. Each notebook records its figures
and its claims (:mod:`bench.reporting.claims`) in ``<out>/<name>.values.json``. Then
``<out>/index.html`` sums them up (:mod:`bench.reporting.index_page`), and its short text version
is printed. The command fails (exit 1) when a notebook fails or any claim failed, each
failed claim named on a line of its own; the HTML is written either way.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from . import index_page
from .claims import failed
from ..measuring.machine import describe
from ..measuring.paths import ROOT

#: A cell that runs longer fails the notebook instead of hanging the report (or CI).
EXECUTION_TIMEOUT_SECONDS = 1200
NOTEBOOKS = ("01_reproduce_oom", "02_tune_chunk_and_overlap", "03_memory_profiles", "04_regression_report",
             "05_service_capacity")


#: The reader's view and the full view: file suffix -> nbconvert's HTMLExporter options.
VIEWS = {".html": {"exclude_input": True, "exclude_input_prompt": True, "exclude_output_prompt": True},
         ".code.html": {}}


def write_views(executed: Path, out: Path, name: str) -> list[Path]:
    """``name.html`` (the reader's view: no code inputs) and ``name.code.html`` (the full view) from the executed
    notebook; their paths."""
    import nbformat
    from nbconvert import HTMLExporter

    notebook = nbformat.read(executed, as_version=4)
    written = []
    for suffix, options in VIEWS.items():
        body, _ = HTMLExporter(**options).from_notebook_node(notebook)
        path = out / f"{name}{suffix}"
        path.write_text(body)
        written.append(path)
    return written


def execute(name: str, out: Path, parameters: dict) -> dict:
    """Run one notebook; write ``name.ipynb``, its two HTML views and ``name.values.json`` into ``out``."""
    import papermill

    out.mkdir(parents=True, exist_ok=True)
    values = out / f"{name}.values.json"
    values.unlink(missing_ok=True)
    executed = out / f"{name}.ipynb"
    params = {"out_dir": str(out / name), "values_path": str(values), **parameters}
    if name == "02_tune_chunk_and_overlap":
        params.setdefault("interactive", False)  # no widget comms under papermill: the plain calls stand for it
    try:
        papermill.execute_notebook(str(ROOT / "notebooks" / f"{name}.ipynb"), str(executed), parameters=params,
                                   cwd=str(ROOT), progress_bar=False, kernel_name="python3",
                                   execution_timeout=EXECUTION_TIMEOUT_SECONDS)
    finally:
        if executed.exists():
            write_views(executed, out, name)
    return json.loads(values.read_text()) if values.exists() else {}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench report", description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, help="JSON: {notebook name: {parameter: value}}")
    parser.add_argument("--out", type=Path, default=ROOT / "reports", help="where the reports go (default reports/)")
    parser.add_argument("--only", action="append", choices=NOTEBOOKS, help="run only these notebooks")
    args = parser.parse_args(argv)
    params = json.loads(args.params.read_text()) if args.params else {}
    statuses = {}
    for name in NOTEBOOKS:
        if args.only and name not in args.only:
            (args.out / f"{name}.values.json").unlink(missing_ok=True)  # no stale figures on the index
            statuses[name] = ("not run", None)
            continue
        started = time.perf_counter()
        try:
            execute(name, args.out, params.get(name, {}))
            status = "ok"
        except Exception as exc:  # papermill's PapermillExecutionError names the failing cell
            status = f"FAILED: {str(exc).strip().splitlines()[-1][:300] if str(exc).strip() else type(exc).__name__}"
        statuses[name] = (status, time.perf_counter() - started)
        print(f"{name}: {status} ({statuses[name][1]:.0f} s) -> {args.out / (name + '.html')}",
              file=sys.stderr, flush=True)
    runs = index_page.read_runs(args.out, statuses)
    machine = describe()
    index = index_page.write(args.out, runs, machine)
    failed_claims = [c for run in runs for c in failed(run.claims)]
    for failed_claim in failed_claims:
        print(f"claim failed: {failed_claim.line()}", file=sys.stderr)
    print(index_page.text(runs, machine, index))
    broken = [run for run in runs if run.status not in ("ok", "not run")]
    return 1 if broken or failed_claims else 0
