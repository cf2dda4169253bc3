"""pokerl: pure reinforcement learning for Game Boy games."""

__version__ = "0.1.0"
