"""Run every benchmark: ``python -m benchmarks.run_all [--only models ranking ...]``."""

from __future__ import annotations

import argparse
import importlib

BENCHMARKS = ("ranking", "text", "models", "quality", "report")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--only", nargs="*", choices=BENCHMARKS, default=list(BENCHMARKS))
    args = ap.parse_args(argv)
    failed = []
    for name in args.only:
        print(f"== benchmark {name}", flush=True)
        out = importlib.import_module(f"benchmarks.bench_{name}").main()
        failed += [desc for desc, c in out["checks"].items() if not c["pass"]]
    print("targets missed:" if failed else "every target met", *failed, sep="\n  ")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
