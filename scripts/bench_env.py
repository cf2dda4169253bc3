#!/usr/bin/env python3
"""Env steps/s over bare PyBoy steps/s, and RSS per extra env: see pokerl.bench.env."""
import sys

from pokerl.bench.env import main

if __name__ == "__main__":
    sys.exit(main())
