"""Training SPS against raw emulator SPS and learner throughput (see pokerl.bench.train)."""

from pokerl.bench.train import main

if __name__ == "__main__":  # worker processes are spawned: keep the guard
    raise SystemExit(main())
