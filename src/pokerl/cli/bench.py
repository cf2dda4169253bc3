"""``pokerl-bench NAME [args]``: run one benchmark (env, train, learning, gpu, soak) from the installed package.

The same benchmarks are reachable as ``scripts/bench_NAME.py`` in a checkout.
"""

from __future__ import annotations

import importlib
import sys

BENCHMARKS = ("env", "train", "learning", "gpu", "soak")


def main(argv: list[str] | None = None) -> int:
    """Dispatch to ``pokerl.bench.<name>.main`` with the remaining arguments."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in BENCHMARKS:
        print(f"usage: pokerl-bench {{{','.join(BENCHMARKS)}}} [args...]", file=sys.stderr)
        return 2
    module = importlib.import_module(f"pokerl.bench.{args[0]}")
    return int(module.main(args[1:]) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
