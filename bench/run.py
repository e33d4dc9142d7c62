"""transferbot's benchmark (issue 13): issue 13's figures on SQLite and PostgreSQL, in one run.

    python bench/run.py [--database sqlite|postgresql|both] [--postgres-url URL] [--quick | --smoke]
                        [--json PATH] [--profile DIR] [--only LIST] [--keep] [--workdir DIR]

See bench/README.md for what each number means. The work is in
bench/scenarios.py (orchestration and report), bench/procs.py (the
processes), bench/world.py (the data), bench/dbs.py (the databases of
either backend) and bench/spy.py (profiles).
"""

import sys
from pathlib import Path

if __name__ == "__main__":
    # Imported only here: the processes the benchmark spawns re-run this file and stay light.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from bench.scenarios import main

    sys.exit(main())
