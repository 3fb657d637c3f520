"""``python -m bench fuzz``: a long campaign of generated inputs, each checked by
:func:`~bench.fuzzing.properties.check_case`, in fresh worker processes (``--jobs``, one a core).

A worker writes a line before each case and one after it, so a worker that dies (an abort in a C kernel, a
signal) leaves its case behind: the campaign counts it as an abort and starts another worker for the examples
left. Hypothesis draws the cases from ``--seed`` (no database: nothing is stored between campaigns). The result,
``OUT/fuzz.json``, counts findings by kind and says what was covered: rates, channels, frames, containers,
contents, and each entry point's outcomes. Exit code 1 when anything was found but a known divergence
(:data:`~bench.fuzzing.properties.DIVERGENCES`).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from ..measuring.paths import RESULTS, ROOT
from .cases import EDGE_RATES, MAX_SAMPLES
from .properties import DIVERGENCES, KINDS


def run_worker(examples: int, seed: int, log: Path, max_samples: int, cli_every: int) -> None:
    """Check ``examples`` Hypothesis cases from ``seed``, appending ``{"started": case}`` and then the result of
    each to ``log`` (JSON lines, flushed)."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hypothesis_seed

    from .cases import cases
    from .properties import check_case

    count = 0

    @hypothesis_seed(seed)
    @settings(max_examples=examples, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(cases(max_samples=max_samples))
    def one(case):
        nonlocal count
        count += 1
        with log.open("a") as out:
            out.write(json.dumps({"started": case.to_dict()}) + "\n")
        started = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="audionorm-fuzz-") as folder:
            result = check_case(case, Path(folder), cli=cli_every > 0 and count % cli_every == 0)
        result["seconds"] = round(time.perf_counter() - started, 3)
        with log.open("a") as out:
            out.write(json.dumps(result) + "\n")

    one()


def _read_log(log: Path) -> tuple[list[dict], dict | None]:
    """The results in ``log``, and the case a worker started and never finished (None if every one finished)."""
    results, pending = [], None
    for line in log.read_text().splitlines() if log.exists() else []:
        entry = json.loads(line)
        if "started" in entry:
            pending = entry["started"]
        else:
            results.append(entry)
            pending = None
    return results, pending


def _run_share(examples: int, seed: int, folder: Path, max_samples: int, cli_every: int) -> list[dict]:
    """One worker's share, in fresh processes: a worker that dies leaves an abort finding, and another goes on
    with what is left (from another seed)."""
    results, attempt = [], 0
    while len(results) < examples and attempt < 20:
        log = folder / f"worker-{seed}-{attempt}.jsonl"
        done = subprocess.run([sys.executable, "-m", "bench.fuzzing.campaign", "--worker",
                               "--examples", str(examples - len(results)), "--seed", str(seed + 7919 * attempt),
                               "--log", str(log), "--max-samples", str(max_samples), "--cli-every", str(cli_every)],
                              cwd=ROOT, capture_output=True, text=True)
        found, pending = _read_log(log)
        results += found
        if done.returncode == 0:
            break
        what = f"the worker ended with exit code {done.returncode}: {done.stderr.strip()[-300:]}"
        results.append({"case": pending, "outcomes": {}, "findings": [f"abort: {what}"], "seconds": None})
        attempt += 1
    return results


def _share(examples: int, jobs: int) -> list[int]:
    return [examples // jobs + (1 if i < examples % jobs else 0) for i in range(jobs)]


def summarize(results: list[dict], seconds: float) -> dict:
    """Findings by kind (every kind listed, 0 where none), the first 50 findings with their cases, and coverage."""
    cases = [r["case"] for r in results if r["case"]]
    findings = [(f, r["case"]) for r in results for f in r["findings"]]
    by_kind = Counter(f.split(":", 1)[0] for f, _ in findings)
    rates = sorted({c["rate"] for c in cases})
    frames = [c["frames"] for c in cases]
    outcomes: dict[str, Counter] = {}
    for r in results:
        for name, outcome in r["outcomes"].items():
            outcomes.setdefault(name, Counter())[outcome] += 1
    return {
        "examples": len(results), "seconds": round(seconds, 1),
        "findings": {kind: by_kind.get(kind, 0) for kind in KINDS},
        "first_findings": [{"finding": f, "case": c} for f, c in findings[:50]],
        "coverage": {
            "rates": {"lowest": rates[0] if rates else None, "highest": rates[-1] if rates else None,
                      "distinct": len(rates), "below_5120": sum(c["rate"] < 5120 for c in cases),
                      "above_256000": sum(c["rate"] > 256_000 for c in cases),
                      "edges_hit": sorted(set(rates) & set(EDGE_RATES))},
            "channels": dict(sorted(Counter(c["channels"] for c in cases).items())),
            "frames": {"lowest": min(frames, default=None), "highest": max(frames, default=None),
                       "zero": frames.count(0), "under_one_stft_frame": sum(0 < f < 1024 for f in frames),
                       "over_one_gate_piece": sum(f > 125_000 for f in frames)},
            "containers": dict(sorted(Counter(c["container"] for c in cases).items())),
            "contents": dict(sorted(Counter(c["content"] for c in cases).items())),
            "denoise_off": sum(not c["denoise"] for c in cases),
            "workers": dict(sorted(Counter(c["workers"] for c in cases).items())),
        },
        "outcomes": {name: dict(counter.most_common()) for name, counter in sorted(outcomes.items())},
    }


def campaign(examples: int, seed: int, jobs: int, out: Path, max_samples: int = MAX_SAMPLES,
             cli_every: int = 10) -> dict:
    """Run ``examples`` cases over ``jobs`` worker processes (seeds ``seed``, ``seed + 1``...); write and return
    ``out/fuzz.json`` (:func:`summarize`, with the parameters)."""
    from concurrent.futures import ThreadPoolExecutor

    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("worker-*.jsonl"):
        old.unlink()
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        shares = [pool.submit(_run_share, n, seed + i, out, max_samples, cli_every)
                  for i, n in enumerate(_share(examples, jobs)) if n]
        results = [r for share in shares for r in share.result()]
    summary = summarize(results, time.perf_counter() - started)
    summary["parameters"] = {"examples": examples, "seed": seed, "jobs": jobs, "max_samples": max_samples,
                             "cli_every": cli_every}
    (out / "fuzz.json").write_text(json.dumps(summary, indent=2))
    return summary


def _lines(summary: dict) -> list[str]:
    cov = summary["coverage"]
    found = ", ".join(f"{k} {v}" for k, v in summary["findings"].items())
    return [f"{summary['examples']} examples in {summary['seconds']:.0f} s: {found}",
            f"rates {cov['rates']['lowest']}-{cov['rates']['highest']} Hz ({cov['rates']['distinct']} distinct, "
            f"{cov['rates']['below_5120']} below 5120, {cov['rates']['above_256000']} above 256000); channels "
            f"{min(cov['channels'], default='-')}-{max(cov['channels'], default='-')}; frames "
            f"{cov['frames']['lowest']}-{cov['frames']['highest']} ({cov['frames']['zero']} empty, "
            f"{cov['frames']['under_one_stft_frame']} under one STFT frame, {cov['frames']['over_one_gate_piece']} "
            f"over one gate piece)",
            "containers: " + ", ".join(f"{k} {v}" for k, v in cov["containers"].items()),
            "contents: " + ", ".join(f"{k} {v}" for k, v in cov["contents"].items()),
            *[f"  {f['finding']}  <- {f['case']}" for f in summary["first_findings"][:10]]]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench fuzz", description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=200, help="cases to check in all (default 200)")
    parser.add_argument("--seed", type=int, default=0, help="Hypothesis's seed for the first worker (default 0)")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes at once (default 2)")
    parser.add_argument("--out", type=Path, default=RESULTS / "fuzz", help="where fuzz.json goes (default bench/results/fuzz)")
    parser.add_argument("--max-samples", type=int, default=MAX_SAMPLES,
                        help=f"largest case, frames x channels (default {MAX_SAMPLES})")
    parser.add_argument("--cli-every", type=int, default=10,
                        help="also run the real CLI in a fresh process on every Nth case (0: never; default 10)")
    parser.add_argument("--json", action="store_true", help="print fuzz.json instead of the summary")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--log", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        run_worker(args.examples, args.seed, args.log, args.max_samples, args.cli_every)
        return 0
    summary = campaign(args.examples, args.seed, max(1, args.jobs), args.out, args.max_samples, args.cli_every)
    print(json.dumps(summary, indent=2) if args.json else "\n".join(_lines(summary)))
    return 1 if any(n for kind, n in summary["findings"].items() if kind not in DIVERGENCES) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
