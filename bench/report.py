"""python -m bench report: execute the five notebooks with papermill into reports/, as .ipynb and HTML.

    python -m bench report [--params FILE] [--out reports] [--only 04_regression_report]

``--params`` is a JSON file mapping a notebook's name to the parameters to inject,
e.g. ``{"01_reproduce_oom": {"sizes": "1m,5m"}}``. Each notebook records its figures
in ``<out>/<name>.values.json``. A notebook that fails makes the command fail (exit 1).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: A cell that runs longer fails the notebook instead of hanging the report (or CI).
EXECUTION_TIMEOUT_SECONDS = 1200
NOTEBOOKS = ("01_reproduce_oom", "02_tune_chunk_and_overlap", "03_memory_profiles", "04_regression_report",
             "05_service_capacity")


def execute(name: str, out: Path, parameters: dict) -> dict:
    """Run one notebook; write ``name.ipynb``, ``name.html`` and ``name.values.json`` into ``out``."""
    import nbformat
    import papermill
    from nbconvert import HTMLExporter

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
            body, _ = HTMLExporter().from_notebook_node(nbformat.read(executed, as_version=4))
            (out / f"{name}.html").write_text(body)
    return json.loads(values.read_text()) if values.exists() else {}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench report", description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, help="JSON: {notebook name: {parameter: value}}")
    parser.add_argument("--out", type=Path, default=ROOT / "reports", help="where the reports go (default reports/)")
    parser.add_argument("--only", action="append", choices=NOTEBOOKS, help="run only these notebooks")
    args = parser.parse_args(argv)
    params = json.loads(args.params.read_text()) if args.params else {}
    failed = []
    for name in args.only or NOTEBOOKS:
        started = time.perf_counter()
        try:
            execute(name, args.out, params.get(name, {}))
            status = "ok"
        except Exception as exc:  # papermill's PapermillExecutionError names the failing cell
            failed.append(name)
            status = f"FAILED: {str(exc).strip().splitlines()[-1][:300] if str(exc).strip() else type(exc).__name__}"
        print(f"{name}: {status} ({time.perf_counter() - started:.0f} s) -> {args.out / (name + '.html')}",
              file=sys.stderr, flush=True)
    return 1 if failed else 0
