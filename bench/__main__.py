"""python -m bench COMMAND ...: the harness's commands."""

import sys

from .cluster import pool_capacity, service_load, service_repro
from .fuzzing import campaign as fuzz
from .measuring import flat_memory, harness, hostile, same_as_service, sections_speed, smallest_container
from .reporting import compare, report
from .tuning import tune

COMMANDS = {"run": harness.main, "compare": compare.main, "report": report.main, "flat-memory": flat_memory.main,
            "service-repro": service_repro.main, "service-load": service_load.main,
            "tune": tune.main, "sections": sections_speed.main, "hostile": hostile.main,
            "same-as-service": same_as_service.main, "smallest-container": smallest_container.main,
            "pool-capacity": pool_capacity.main, "fuzz": fuzz.main}

if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
    print(f"usage: python -m bench {{{','.join(COMMANDS)}}} ...", file=sys.stderr)
    sys.exit(2)
sys.exit(COMMANDS[sys.argv[1]](sys.argv[2:]))
