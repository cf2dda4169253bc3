"""Seeds x env steps of training on tinyquest; the steps each milestone costs (see pokerl.bench.learning)."""

from pokerl.bench.learning import main

if __name__ == "__main__":  # worker processes are spawned: keep the guard
    raise SystemExit(main())
