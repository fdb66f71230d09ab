"""Coverage of the shipped all-atom references by the shipped mobility model, with the shipped
database's input cloud and the sampling advice (:mod:`cgforge.workflows.coverage`; no MD).

Writes ``benchmarks/results/db_coverage.json`` (the ``cgforge db coverage`` JSON plus the
machine and the wall time) and ``benchmarks/results/db_coverage.png``.

    python benchmarks/db_coverage.py
    python benchmarks/db_coverage.py --db other.sqlite --model MODEL_DIR
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _machine import describe_machine
from cgforge.fileio import write_json
from cgforge.workflows.coverage import run_coverage

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, default=None, help="database (default: shipped)")
    parser.add_argument("--model", type=Path, default=None, help="model (default: shipped)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        result = run_coverage(args.db, args.model, tmp)
        wall = time.perf_counter() - start
        RESULTS.mkdir(exist_ok=True)
        shutil.copyfile(Path(tmp) / "coverage.png", RESULTS / "db_coverage.png")
    result["files"] = {"json": "db_coverage.json", "plot": "db_coverage.png"}
    result["wall_s"] = wall
    result["machine"] = describe_machine()
    write_json(RESULTS / "db_coverage.json", result)
    print(f"coverage {result['n_covered']}/{result['n_references']} ({wall:.1f} s)")
    for row in result["liquids"]:
        flag = "OOD" if row["out_of_distribution"] else "in"
        print(f"  {row['liquid']:<24} {flag:<4} {'; '.join(row['ood_reasons'])}")
    for statement in result["advice"]["statements"]:
        print(f"- {statement}")


if __name__ == "__main__":
    main()
