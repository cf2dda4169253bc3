"""``pokerl-train [overrides...]``: compose the config with Hydra and run PPO.

Examples::

    pokerl-train                                   # tinyquest, defaults from configs/train.yaml
    pokerl-train model=small total_steps=500_000   # a CPU-sized run
    pokerl-train game=pokemon_red reward=pokemon rom=~/roms/pokered.gb
    pokerl-train resume=runs/tinyquest-20261125-120000
    torchrun --nproc_per_node=4 -m pokerl.cli.train model=default   # one learner per GPU
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from pokerl.errors import exit_on_error

if TYPE_CHECKING:
    from pokerl.config import TrainConfig


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Hydra-style ``key=value`` overrides plus two options for a user's own config folder."""
    parser = argparse.ArgumentParser(
        prog="pokerl-train",
        description="Train a CNN-LSTM policy with PPO on a Game Boy game (Hydra overrides: key=value).",
    )
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. model=small num_envs=16")
    parser.add_argument("--config-dir", default=None, help="a folder with your own train.yaml (and groups)")
    parser.add_argument("--config-name", default="train", help="config file name in --config-dir")
    parser.add_argument("--print-config", action="store_true", help="print the composed config and exit")
    return parser.parse_args(argv)


def check_inputs(cfg: TrainConfig) -> None:
    """What the user named (game, reward and env configs, the ROM, an init= checkpoint) is checked before
    torch is imported and a trainer built: a mistake costs one line at once, not seconds of setup first."""
    from pokerl.rundir import resolve_checkpoint
    from pokerl.spec import run_spec

    run_spec(cfg).profile.check_rom(cfg.rom)
    if cfg.init and not cfg.resume:  # a resumed run started from its init= long ago
        resolve_checkpoint(cfg.init)


@exit_on_error
def main(argv: list[str] | None = None) -> int:
    """Entry point of ``pokerl-train``."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    from pokerl.config import compose_train_config, dump_config

    cfg = compose_train_config(args.overrides, args.config_dir, args.config_name)
    if args.print_config:
        print(dump_config(cfg), end="")
        return 0
    check_inputs(cfg)
    from pokerl.trainer import Trainer

    trainer = Trainer(cfg)
    trainer.run()
    if trainer.stop_signal is not None:
        print(f"pokerl: stopped at step {trainer.global_step:,}; continue with: pokerl-train resume={trainer.run_dir}",
              file=sys.stderr)
        return 128 + trainer.stop_signal  # the shell's code for "ended by" SIGINT (130) or SIGTERM (143)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
