#!/usr/bin/env python3
"""A long training run with workers killed at random and a SIGTERM + resume: see pokerl.bench.soak."""
import sys

from pokerl.bench.soak import main

if __name__ == "__main__":
    sys.exit(main())
