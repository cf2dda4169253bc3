"""``pokerl-play RUN_DIR_OR_CHECKPOINT``: watch a trained policy play, live or recorded.

By default a PyBoy window (SDL2, scaled x3) shows the game at normal speed; the policy's LSTM state
is carried from step to step. In the window, P pauses and Esc (or closing it) quits. With
``--headless --record out.gif|out.mp4`` nothing is shown and every step's frame is written to a
video instead. ``--actions FILE`` replays a saved action list instead of the policy (for bug
reports); ``--save-actions FILE`` saves the actions of any play.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from pokerl.cli import agent_flags, at_least, check_agent, output_file
from pokerl.errors import PokerlError, exit_on_error


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="pokerl-play", description=__doc__.splitlines()[0],
                                     parents=[agent_flags()])
    parser.add_argument("--speed", type=int, default=1, help="1 = real time, N = N x, 0 = unlimited")
    parser.add_argument("--scale", type=int, default=3, help="window scale")
    parser.add_argument("--episodes", type=int, default=1)
    parser.add_argument("--steps", type=int, default=None, help="stop after this many steps in total")
    parser.add_argument("--until", default=None, metavar="MILESTONE",
                        help="end each episode when it reaches this milestone (default with --pretrained: the "
                             "furthest one its model card measured in at least half of its episodes)")
    parser.add_argument("--from-milestone", default=None, metavar="NAME",
                        help="start at the run's archived state holding this milestone (default: power-on)")
    parser.add_argument("--headless", action="store_true", help="no window (use with --record)")
    parser.add_argument("--record", default=None, metavar="VIDEO", help="write the frames to a .gif or .mp4")
    parser.add_argument("--fps", type=int, default=15, help="frames per second of the recording")
    parser.add_argument("--actions", default=None, metavar="JSON", help="replay this action list instead of the policy")
    parser.add_argument("--save-actions", default=None, metavar="JSON", help="save the actions taken")
    return parser.parse_args(argv)


def check_display(headless: bool) -> None:
    """A window needs a display: X11/Wayland, or SDL's own video driver set by the user."""
    if headless:
        return
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or os.environ.get("SDL_VIDEODRIVER")):
        raise PokerlError("no display to open a window on (DISPLAY is not set): use --headless --record out.gif")


def showcase_milestone(weights: str) -> str | None:
    """What a shipped agent's demo plays until: the furthest milestone (by its median steps) that the model
    card measured in at least half of its episodes; None when the card says none. Said on stderr."""
    from pokerl.pretrained import read_card

    evaluation = read_card(weights).get("evaluation") or {}
    rates, steps = evaluation.get("milestone_rates") or {}, evaluation.get("median_steps_to_milestone") or {}
    likely = [m for m, rate in rates.items() if rate >= 0.5 and m in steps]
    if not likely:
        return None
    until = max(likely, key=lambda m: steps[m])
    print(f"pokerl: playing until {until} (the card: reached in {rates[until]:.0%} of its episodes, at a median "
          f"step of {steps[until]:,.0f}); --until NAME or --steps N to choose", file=sys.stderr, flush=True)
    return until


def load_actions(path: str) -> list[int]:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise PokerlError(f"cannot read actions file {path}: {' '.join(str(err).split())}") from None
    actions = data["actions"] if isinstance(data, dict) and "actions" in data else data
    if not isinstance(actions, list) or not all(isinstance(a, int) for a in actions):
        raise PokerlError(f"{path}: expected a JSON list of action numbers (or {{\"actions\": [...]}})")
    return actions


@exit_on_error
def main(argv: list[str] | None = None) -> int:
    """Entry point of ``pokerl-play``."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    at_least(1, scale=args.scale, fps=args.fps, episodes=args.episodes)
    at_least(0, speed=args.speed, steps=args.steps)
    output_file("--record", args.record, (".gif", ".mp4"))
    output_file("--save-actions", args.save_actions)
    source = check_agent(args)  # what the user named first: then whether there is a window to show it in
    check_display(args.headless or args.info)
    import numpy as np
    import torch

    from pokerl.config import load_model_config
    from pokerl.env import make_env
    from pokerl.evaluate import load_agent
    from pokerl.pretrained import card_text

    if args.info:
        print(card_text(source, full=args.full), end="")
        return 0
    model = load_model_config(args.model) if args.model else None
    agent = load_agent(source, rom=args.rom, model=model)
    until = args.until
    if until is None and args.pretrained and args.steps is None and not args.actions:
        until = showcase_milestone(source)
    if until is not None and until not in agent.spec.milestone_names:
        raise PokerlError(f"--until {until}: not a milestone of {agent.spec.profile.name} "
                          f"({', '.join(agent.spec.milestone_names)})")
    agent.spec.profile.check_rom(args.rom or agent.config.rom)  # its game's SHA-1, before any env starts
    replay = load_actions(args.actions) if args.actions else None
    window = "null" if args.headless else "SDL2"
    env = make_env(**agent.env_kwargs(args.rom, args.from_milestone), window=window, window_scale=args.scale,
                   speed=args.speed)
    writer = _video_writer(args.record, args.fps) if args.record else None
    taken: list[int] = []
    try:
        n_actions = int(env.action_space.n)
        live = sys.stdout.isatty()
        total = 0
        for episode in range(args.episodes):
            obs, _ = env.reset(seed=args.seed + episode)
            torch.manual_seed(args.seed + episode)  # the sampled actions too: --seed replays the episode
            state = agent.policy.initial_state(1)
            start = torch.ones(1)
            ret, done = 0.0, False
            status = f"episode {episode + 1}: no steps"
            while not done:
                if args.steps is not None and total >= args.steps:
                    break
                if replay is not None:
                    if total >= len(replay):
                        break
                    action = int(replay[total])
                    if not 0 <= action < n_actions:
                        raise PokerlError(f"{args.actions}: action {action} at step {total} "
                                          f"is not in 0..{n_actions - 1}")
                else:
                    batch = {k: torch.as_tensor(v).unsqueeze(0) for k, v in obs.items()}
                    act, _, _, state = agent.policy.act(batch, state, start, deterministic=args.deterministic)
                    action = int(act[0])
                obs, reward, terminated, truncated, info = env.step(action)
                start = torch.zeros(1)
                taken.append(action)
                total += 1
                ret += reward
                done = terminated or truncated
                if writer is not None:
                    writer.append_data(np.ascontiguousarray(env.unwrapped.session.rgb()))
                status = (f"episode {episode + 1} step {total} return {ret:.2f} milestones: "
                          f"{', '.join(info['milestones']) or '-'}")
                if until is not None and until in info["milestones"]:
                    done = True
                    status += f" (reached {until}: episode ended, --until)"
                if live:  # a terminal: one status line, rewritten each step
                    print(f"\r{status}   ", end="", flush=True)
                if not env.unwrapped.session.open:
                    print("\nwindow closed", flush=True)
                    return 0
            print("" if live else status, flush=True)  # a pipe or log file: one line per episode
            if (args.steps is not None and total >= args.steps) or (replay is not None and total >= len(replay)):
                break
    finally:
        if writer is not None:
            writer.close()
        env.close()
        if args.save_actions:
            Path(args.save_actions).write_text(json.dumps({"checkpoint": agent.checkpoint, "seed": args.seed,
                                                           "actions": taken}))
    return 0


def _video_writer(path: str, fps: int):  # noqa: ANN202 - imageio's writer type
    import imageio.v2 as imageio

    if path.lower().endswith(".gif"):
        return imageio.get_writer(path, mode="I", duration=1000 / fps, loop=0)
    try:
        return imageio.get_writer(path, fps=fps, codec="libx264", macro_block_size=1)
    except (ImportError, ValueError, RuntimeError) as err:
        raise PokerlError(f"cannot write mp4 ({' '.join(str(err).split())[:200]}); "
                          "install imageio-ffmpeg or record a .gif") from None


if __name__ == "__main__":
    raise SystemExit(main())
