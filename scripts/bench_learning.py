"""Seeds x minutes of training on tinyquest; share of seeds past the first badge (see pokerl.bench.learning)."""

from pokerl.bench.learning import main

if __name__ == "__main__":  # worker processes are spawned: keep the guard
    raise SystemExit(main())
