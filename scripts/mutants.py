"""Planted bugs the tests must catch: each is applied to a temporary copy of the tree and its tests run there.

RL bugs are silent (the run still learns, only worse), so a change to the training path proves its
tests still bite by keeping every bug below caught. Each entry names a file, the exact text it
replaces (found exactly once, or the list is stale and says so), the replacement, and the tests
that must fail. The copy imports its own ``src/`` (``PYTHONPATH``), so nothing of the working tree
changes.

    python scripts/mutants.py                 # all of them, a table; exit 1 if any is not caught
    python scripts/mutants.py --only gae_next_start --json
    python scripts/mutants.py --list
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Mutant:
    name: str
    file: str
    old: str
    new: str
    tests: tuple[str, ...]


WIRING = "tests/test_training_wiring.py"
SHORTEN = "tests/test_shorten.py"
SHORT_ENDS = SHORTEN + "::test_the_loops_go_and_the_short_chain_ends_where_the_long_one_did"
PIN = "tests/test_golden_run.py"
BACKWARD = "tests/test_backward.py"
FOLLOW = BACKWARD + "::test_following_the_chain_pays_each_step_once_in_order_and_survives_a_snapshot"
LIMIT = BACKWARD + "::test_an_episode_has_twice_the_chains_remaining_steps_between_min_steps_and_max_steps"
SETTLE = "::test_goexplore_switches_once_the_shortest_way_to_the_target_has_stood_settle_steps"
LINEAGE = "tests/test_archive.py::test_an_entry_records_its_trajectory_from_power_on_and_replays_to_the_same_state"
IMITATION = "tests/test_imitation.py"
DEMO = IMITATION + "::test_a_demonstration_is_the_chains_own_way_across_its_segments"
TEACH = IMITATION + "::test_self_imitation_teaches_the_chains_actions_only_where_the_chain_did_better"
REPLAYED = IMITATION + "::test_the_run_replays_the_chains_way_again_when_t_moves_and_trains_with_it"
LATER_SIL = IMITATION + "::test_points_past_the_window_are_imitated_too_drawn_afresh_at_each_update"
OWN_SIL = IMITATION + "::test_the_runs_own_successes_are_imitated_as_they_played_the_last_few_kept_in_checkpoints"
LOSS = "loss = pg_loss - cfg.ent_coef * entropy + cfg.vf_coef * v_loss"

MUTANTS = [
    # the trainer's rollout and update (tests/test_training_wiring.py)
    Mutant("bootstrap_terminated_too", "src/pokerl/rollout.py", "np.flatnonzero(truncated & ~terminated)",
           "np.flatnonzero(truncated | terminated)",
           (WIRING + "::test_only_truncations_are_bootstrapped_and_by_gamma_times_v",)),
    Mutant("bootstrap_without_gamma", "src/pokerl/rollout.py", "+= self.ppo.gamma * value",
           "+= value", (WIRING + "::test_only_truncations_are_bootstrapped_and_by_gamma_times_v",)),
    Mutant("gae_next_start_zeros", "src/pokerl/trainer.py", "next_value, self.starts,",
           "next_value, torch.zeros_like(self.starts),",
           (WIRING + "::test_an_episode_ending_on_the_rollouts_last_step_does_not_bootstrap_into_the_next",)),
    Mutant("update_ignores_valid", "src/pokerl/ppo.py",
           "valid = None if bool(buffer.valid.all()) else _sequences(buffer.valid, L)", "valid = None",
           (WIRING + "::test_lost_columns_contribute_nothing_to_the_update",)),
    Mutant("adv_norm_over_all_steps", "src/pokerl/ppo.py", "kept = mb_adv[mb_valid.bool()]", "kept = mb_adv.flatten()",
           (WIRING + "::test_lost_columns_contribute_nothing_to_the_update",)),
    Mutant("lost_columns_stay_valid", "src/pokerl/rollout.py", "buffer.valid[:, cols] = 0.0",
           "buffer.valid[:, cols] = 1.0",
           ("tests/test_workers.py::test_killed_worker_is_restarted_and_the_run_finishes",)),
    # the env and its rewards
    Mutant("offer_only_new_cells", "src/pokerl/archive.py",
           "return candidate.steps < self.steps.get(candidate.cell, candidate.steps + 1)",
           "return candidate.cell not in self.steps",
           ("tests/test_archive.py::test_a_known_cell_is_offered_again_when_reached_in_fewer_steps_from_power_on",)),
    Mutant("archive_mid_battle", "src/pokerl/env.py", "if self._pending and (terminated or not busy):",
           "if self._pending:",
           ("tests/test_archive.py::test_no_state_is_archived_mid_battle_or_where_the_episode_ends",)),
    Mutant("heal_paid_in_battle", "src/pokerl/rewards.py", "and not in_battle and blackouts <= 0", "and blackouts <= 0",
           ("tests/test_rewards.py::test_heal_is_not_paid_in_battle",)),
    Mutant("milestone_paid_every_step", "src/pokerl/rewards.py",
           "            self._held.add(m.name)\n            self.reached.append(m.name)",
           "            self.reached.append(m.name)", ("tests/test_rewards.py::test_milestone_paid_once_per_episode",)),
    Mutant("first_reached_counts_held", "src/pokerl/milestones.py", ".items() if name not in held}", ".items()}",
           ("tests/test_milestones.py",)),
    # the archive and lineage
    Mutant("terminal_state_a_start", "src/pokerl/archive.py", "self.starts = [e for e in entries if not e.terminal]",
           "self.starts = list(entries)",
           ("tests/test_archive.py::test_no_state_is_archived_mid_battle_or_where_the_episode_ends",)),
    Mutant("lineage_forgets_the_seed", "src/pokerl/env.py", "self._seed_written, self._actions = rng, bytearray()",
           "self._seed_written, self._actions = 0, bytearray()", (LINEAGE,)),
    Mutant("lineage_forgets_the_parent", "src/pokerl/archive.py",
           "return (*(start.trajectory if start is not None else ()), (seed, actions))", "return ((seed, actions),)",
           (LINEAGE,)),
    Mutant("archive_keeps_more_steps", "src/pokerl/archive.py", "return old is None or new.steps < old.steps",
           "return old is None or new.steps > old.steps",
           ("tests/test_archive.py::test_eviction_keeps_the_best_and_each_stage",)),
    # the backward curriculum
    Mutant("frontier_moves_on_failure", "src/pokerl/backward.py",
           "np.mean(self.outcomes) >= self.cfg.threshold", "np.mean(self.outcomes) >= 0",
           (BACKWARD + "::test_t_moves_back_only_on_success",)),
    Mutant("window_ignores_t", "src/pokerl/backward.py", "if t <= p.step <= t + cfg.window]",
           "if p.step <= t + cfg.window]", (BACKWARD + "::test_starts_come_from_the_window_past_t_or_power_on",)),
    Mutant("outcomes_of_an_old_t", "src/pokerl/backward.py", "if drawn_for != self.t:", "if False:",
           (BACKWARD + "::test_t_moves_back_only_on_success",)),
    Mutant("starts_at_the_end", "src/pokerl/backward.py",
           "return [p for p in chain.points[:-1] if t <= p.step", "return [p for p in chain.points if t <= p.step",
           (BACKWARD + "::test_starts_come_from_the_window_past_t_or_power_on",)),
    Mutant("later_starts_at_the_end", "src/pokerl/backward.py", "[p for p in chain.points[:-1] if p.step > t]",
           "[p for p in chain.points if p.step > t]",
           (BACKWARD + "::test_starts_come_from_the_window_past_t_or_power_on",)),
    Mutant("limit_not_capped", "src/pokerl/backward.py",
           "return min(max_steps, max(cfg.min_steps, math.ceil(cfg.time_factor * (chain.steps - step))))",
           "return max(cfg.min_steps, math.ceil(cfg.time_factor * (chain.steps - step)))", (LIMIT,)),
    Mutant("follow_pays_again", "src/pokerl/env.py", "        self._progress = furthest\n", "", (FOLLOW,)),
    Mutant("follow_ignores_milestones", "src/pokerl/backward.py", "near = near[near < before]", "near = near",
           (FOLLOW,)),
    Mutant("follow_marks_a_step_late", "src/pokerl/env.py", "actions[point.step:following.step - 1]",
           "[0, *actions[point.step:following.step - 2]]", (FOLLOW,)),
    Mutant("follow_not_restored", "src/pokerl/env.py",
           "(int(drawn_for[1]), float(drawn_for[2])) if len(drawn_for) > 1 else (0, 0.0)", "(0, 0.0)", (FOLLOW,)),
    Mutant("min_steps_ignored", "src/pokerl/backward.py",
           "return min(max_steps, max(cfg.min_steps, math.ceil(cfg.time_factor * (chain.steps - step))))",
           "return min(max_steps, math.ceil(cfg.time_factor * (chain.steps - step)))", (LIMIT,)),
    # self-imitation on the chain (tests/test_imitation.py)
    Mutant("imitation_dropped", "src/pokerl/ppo.py", "                loss = loss + sil_loss\n", "", (TEACH,)),
    Mutant("imitation_not_clipped", "src/pokerl/imitation.py", "values.float()).clamp(min=0.0)", "values.float())",
           (TEACH,)),
    Mutant("imitation_pushes_away", "src/pokerl/imitation.py", "masked_mean(-log_prob * gap.detach()",
           "masked_mean(log_prob * gap.detach()", (TEACH,)),
    Mutant("demonstration_boundary_without_seed", "src/pokerl/env.py",
           "self._boot(chain.trajectory[int(np.searchsorted(bounds, step, side=\"right\"))][0])", "self._boot(0)",
           (DEMO,)),
    Mutant("demonstration_misses_the_points_boundary", "src/pokerl/env.py", "            if step in bounds:",
           "            if step > point.step and step in bounds:", (DEMO,)),
    Mutant("demonstration_boots_at_the_point", "src/pokerl/env.py", "point.milestones, 0, boot=False)",
           "point.milestones, 0)", (DEMO,)),
    Mutant("imitation_kept_when_t_moves", "src/pokerl/curriculum.py",
           "key = (t, tuple(n for n, _ in self._own))", "key = tuple(n for n, _ in self._own)", (REPLAYED,)),
    Mutant("window_demonstrations_one_episode", "src/pokerl/imitation.py",
           "np.eye(1, len(taken), dtype=np.float32)[0])  # 1 at", "np.zeros(len(taken), np.float32))  # 1 at",
           (IMITATION + "::test_each_window_point_is_demonstrated_as_an_episode_started_there",)),
    Mutant("imitation_from_t_only", "src/pokerl/curriculum.py", "window = window_points(self.chain, t, self.cfg)",
           "window = [p for p in self.chain.points if p.step <= t][-1:]", (REPLAYED,)),
    Mutant("imitate_later_ignored", "src/pokerl/curriculum.py", "[:self.cfg.imitate_later]", "[:0]", (LATER_SIL,)),
    Mutant("imitate_later_drawn_once", "src/pokerl/curriculum.py",
           "self._imitation[0] == key and not self.cfg.imitate_later:", "self._imitation[0] == key:", (LATER_SIL,)),
    Mutant("imitate_later_from_the_window", "src/pokerl/curriculum.py", "if p.step > t + self.cfg.window]",
           "if p.step > t]", (LATER_SIL,)),
    Mutant("demonstration_replayed_at_every_draw", "src/pokerl/curriculum.py", "if point.step not in self._demos:",
           "if True:", (LATER_SIL,)),
    Mutant("own_way_without_its_seed", "src/pokerl/env.py", '"seed": self._seed_written,', '"seed": 0,', (OWN_SIL,)),
    Mutant("own_way_played_with_a_boot", "src/pokerl/env.py", 'way["seed"], boot=not way["exact"])', 'way["seed"])',
           (OWN_SIL,)),
    Mutant("own_way_of_a_failure", "src/pokerl/env.py", "if self._chain_success and reached and", "if reached and",
           (OWN_SIL,)),
    Mutant("own_way_of_a_start_at_the_end", "src/pokerl/env.py",
           "reached = start is None or not self._holds_chain_end(start.milestones)", "reached = True", (OWN_SIL,)),
    Mutant("own_successes_all_kept", "src/pokerl/curriculum.py", "maxlen=max(1, cfg.imitate_own))", "maxlen=None)",
           (OWN_SIL,)),
    Mutant("own_way_played_at_every_update", "src/pokerl/curriculum.py", "if n not in self._own_demos:", "if True:",
           (OWN_SIL,)),
    Mutant("own_successes_not_imitated", "src/pokerl/curriculum.py", ", *self._own_demonstrations(gamma)])", "])",
           (OWN_SIL,)),
    Mutant("own_only_with_the_chains_way_too", "src/pokerl/curriculum.py", "if self.cfg.imitate_steps:  # 0:",
           "if True:  # 0:", (OWN_SIL,)),
    Mutant("own_successes_not_checkpointed", "src/pokerl/curriculum.py", '**({"own": [way for _, way in self._own]}',
           '**({"own": []}', (OWN_SIL,)),
    Mutant("imitation_not_passed", "src/pokerl/trainer.py",
           "imitation=self.curriculum.imitation(ppo.gamma, ppo.bptt, self.device))", "imitation=None)", (REPLAYED,)),
    # loop erasure on a chain (tests/test_shorten.py)
    Mutant("cut_keeps_the_rng", "src/pokerl/shorten.py", "out.append((seeds[rngs[last]], bytearray()))",
           "out.append((rngs[last], bytearray()))", (SHORT_ENDS,)),
    Mutant("loop_goes_on_from_its_first_visit", "src/pokerl/shorten.py", "path[at] = (path[at][0], k)", "pass",
           (SHORT_ENDS,)),
    Mutant("a_wait_is_no_loop", "src/pokerl/shorten.py", "        if at is None:\n",
           "        if at is None or at == len(path) - 1:\n", (SHORTEN + "::test_a_wait_in_a_battle_menu_goes",)),
    Mutant("short_chain_unchecked", "src/pokerl/shorten.py", "if _key(env, held)[0] != want[step]:", "if False:",
           (SHORTEN + "::test_a_cut_that_does_not_give_the_rng_back_is_caught_and_put_back",)),
    Mutant("chain_writes_unchecked", "src/pokerl/curriculum.py", "        if other:  # the boot writes",
           "        if False:  #",
           (BACKWARD + "::test_a_chain_replayed_with_other_boot_writes_is_a_one_line_config_error",)),
    Mutant("exact_start_boots", "src/pokerl/env.py", "rng, boot=not exact)", "rng)",
           (BACKWARD + "::test_an_exact_start_is_the_chain_as_it_stood_and_another_has_a_new_seed",)),
    Mutant("end_start_not_a_success", "src/pokerl/env.py",
           "self._chain_success = entry is not None and self._holds_chain_end(entry.milestones)",
           "self._chain_success = False", (BACKWARD + "::test_starts_come_from_the_window_past_t_or_power_on",)),
    Mutant("goexplore_never_walks_back", "src/pokerl/curriculum.py",
           'if self.cfg.mode == "goexplore" and self.frontier is None:', "if False:",
           (BACKWARD + "::test_goexplore_explores_until_the_archive_holds_the_target_then_walks_its_own_chain_back",)),
    Mutant("depth_weight_by_count", "src/pokerl/archive.py", 'if by == "depth":', "if False:",
           ("tests/test_archive.py::test_frontier_weights_by_milestones_reward_and_depth",)),
    Mutant("settle_ignored", "src/pokerl/curriculum.py", "if global_step - self._shortest[1] < self.cfg.settle:",
           "if False:", (BACKWARD + SETTLE,)),
    Mutant("settle_clock_not_restarted", "src/pokerl/curriculum.py",
           "if self._shortest is None or entry.steps < self._shortest[0]:", "if self._shortest is None:",
           (BACKWARD + SETTLE,)),
    Mutant("settle_forgotten_on_resume", "src/pokerl/curriculum.py",
           'shortest = None if saved is None else saved.get("shortest")', "shortest = None", (BACKWARD + SETTLE,)),
    Mutant("frontier_not_checkpointed", "src/pokerl/trainer.py",
           '"backward": self.curriculum.state_dict(),', '"backward": None,',
           (BACKWARD + "::test_t_reaches_power_on_and_survives_checkpoint_and_resume",)),
    Mutant("evaluation_draws_on_training_rng", "src/pokerl/evaluate.py",
           'with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):', "if True:",
           ("tests/test_trainer.py::test_periodic_evaluation_from_power_on_is_logged_and_leaves_training_as_it_was",)),
    # PPO's pieces
    Mutant("gae_index", "src/pokerl/ppo.py", "1.0 - episode_starts[t + 1], values[t + 1]",
           "1.0 - episode_starts[t], values[t + 1]", ("tests/test_ppo.py::test_gae_matches_reference_loop",)),
    Mutant("policy_loss_min", "src/pokerl/ppo.py", "torch.max(-advantages * ratio,", "torch.min(-advantages * ratio,",
           ("tests/test_ppo.py::test_policy_loss_matches_hand_computation",)),
    Mutant("policy_clip_range", "src/pokerl/ppo.py", "ratio.clamp(1 - clip, 1 + clip)",
           "ratio.clamp(1 - clip, 1 + 2 * clip)",
           ("tests/test_ppo.py::test_policy_loss_matches_hand_computation",)),
    Mutant("value_clip_range", "src/pokerl/ppo.py", "(new_value - old_value).clamp(-clip, clip)",
           "(new_value - old_value).clamp(-2 * clip, 2 * clip)",
           ("tests/test_ppo.py::test_value_loss_clipped_and_unclipped",)),
    # the learning update's settings, as the pin test must see them (its docstring)
    Mutant("ent_coef_x2", "src/pokerl/ppo.py", LOSS, LOSS.replace("cfg.ent_coef", "2 * cfg.ent_coef"), (PIN,)),
    Mutant("ent_coef_0", "src/pokerl/ppo.py", LOSS, LOSS.replace("cfg.ent_coef", "0 * cfg.ent_coef"), (PIN,)),
    Mutant("entropy_sign", "src/pokerl/ppo.py", LOSS, LOSS.replace("- cfg.ent_coef", "+ cfg.ent_coef"), (PIN,)),
    Mutant("vf_coef_x0.5", "src/pokerl/ppo.py", LOSS, LOSS.replace("cfg.vf_coef", "0.5 * cfg.vf_coef"), (PIN,)),
    Mutant("learning_rate_x2", "src/pokerl/trainer.py", "lr = ppo.learning_rate", "lr = 2 * ppo.learning_rate", (PIN,)),
    Mutant("clip_coef_x2", "src/pokerl/ppo.py", "mb_adv, cfg.clip_coef, mb_valid)",
           "mb_adv, 2 * cfg.clip_coef, mb_valid)", (PIN,)),
    Mutant("gae_lambda_0.9", "src/pokerl/trainer.py", "ppo.gamma, ppo.gae_lambda,", "ppo.gamma, 0.9,", (PIN,)),
    # checkpoints and stops
    Mutant("writes_not_atomic", "src/pokerl/atomic.py",
           'fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)',
           "fd, tmp = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), str(path)",
           ("tests/test_stops.py::test_full_disk_while_checkpointing_is_one_line_and_keeps_latest",)),
    Mutant("rng_not_restored", "src/pokerl/trainer.py", 'set_rng_state(ckpt["rng"])', "pass",
           ("tests/test_trainer.py::test_resume_continues_and_matches_uninterrupted_run",)),
    Mutant("archive_not_restored", "src/pokerl/trainer.py",
           'self.archive.load_state_dict(ckpt["archive"], f"checkpoint of {self.run_dir}")', "pass",
           ("tests/test_archive.py::test_archive_survives_checkpoint_and_resume_and_frontier_resets_use_it",)),
    Mutant("no_checkpoint_on_stop", "src/pokerl/trainer.py",
           "if self.update % log.checkpoint_every == 0 or self.update == last_update:",
           "if self.update % log.checkpoint_every == 0:",
           ("tests/test_stops.py::test_sigterm_to_the_group_checkpoints_and_exits_143",)),
]


class StaleMutant(Exception):
    """A mutant's text is not in its file exactly once: the code moved on, the list must follow."""


def check(mutant: Mutant, root: Path) -> None:
    count = (root / mutant.file).read_text().count(mutant.old)
    if count != 1:
        raise StaleMutant(f"mutant {mutant.name}: its text occurs {count} times in {mutant.file}, not once: "
                          f"update scripts/mutants.py")


def copy_tree(dest: Path) -> None:
    """The tracked and untracked-but-not-ignored files, as a clean clone plus the working tree's edits."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True,
                           capture_output=True).stdout.decode().split("\0")
    for name in filter(None, files):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    # the installed package maps pokerl.configs to configs/; the copy must use its own configs/
    (dest / "src" / "pokerl" / "configs").symlink_to(dest / "configs", target_is_directory=True)


def run_tests(tree: Path, tests: tuple[str, ...], timeout: float) -> tuple[int, str]:
    env = {**os.environ, "PYTHONPATH": str(tree / "src"), "PYTHONDONTWRITEBYTECODE": "1"}
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]
    try:
        out = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return -1, f"timed out after {timeout:g} s"
    lines = [ln for ln in (out.stdout + out.stderr).splitlines() if ln.strip()]
    return out.returncode, lines[-1] if lines else ""


def imports_from(tree: Path) -> None:
    """The copy's tests must import the copy's code, not the installed working tree's."""
    env = {**os.environ, "PYTHONPATH": str(tree / "src")}
    out = subprocess.run([sys.executable, "-c", "import pokerl, pokerl.configs; print(pokerl.__file__); "
                          "print(pokerl.configs.__file__)"], cwd=tree, env=env, capture_output=True, text=True,
                         check=True)
    for path in out.stdout.split():
        if not Path(path).resolve().is_relative_to(tree.resolve()):
            raise RuntimeError(f"the copy imports {path}, outside {tree}")


def try_mutant(mutant: Mutant | None, tests: tuple[str, ...], timeout: float) -> dict[str, object]:
    """Apply ``mutant`` (None: the unmutated baseline) to a fresh copy and run ``tests`` there."""
    with tempfile.TemporaryDirectory(prefix="pokerl-mutant-") as tmp:
        tree = Path(tmp)
        copy_tree(tree)
        imports_from(tree)
        if mutant is not None:
            path = tree / mutant.file
            path.write_text(path.read_text().replace(mutant.old, mutant.new))
        start = time.perf_counter()
        code, last = run_tests(tree, tests, timeout)
        seconds = time.perf_counter() - start
    # pytest: 0 all passed, 1 some failed; anything else (collection error, timeout) is no verdict
    outcome = {0: "passed" if mutant is None else "NOT CAUGHT", 1: "FAILED" if mutant is None else "caught"}
    return {"name": "baseline" if mutant is None else mutant.name, "file": mutant.file if mutant else "",
            "result": outcome.get(code, f"error ({last})"), "seconds": round(seconds, 1), "pytest": last,
            "tests": list(tests)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run these mutants only")
    parser.add_argument("--list", action="store_true", help="list the mutants and their tests")
    parser.add_argument("--json", action="store_true", help="print the results as JSON (the last line)")
    parser.add_argument("--jobs", type=int, default=1, help="mutants run at once (each runs pytest)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds for one mutant's tests")
    args = parser.parse_args(argv)

    chosen = MUTANTS
    if args.only:
        unknown = sorted(set(args.only) - {m.name for m in MUTANTS})
        if unknown:
            parser.error(f"no such mutant: {', '.join(unknown)} (see --list)")
        chosen = [m for m in MUTANTS if m.name in args.only]
    if args.list:
        for m in chosen:
            print(f"{m.name:34} {m.file:26} {' '.join(m.tests)}")
        return 0
    try:
        for m in chosen:
            check(m, ROOT)
    except StaleMutant as err:
        print(f"mutants: {err}", file=sys.stderr)
        return 2

    start = time.perf_counter()
    # the named tests must pass unmutated, or a failure says nothing about the mutant
    all_tests = tuple(dict.fromkeys(t for m in chosen for t in m.tests))
    baseline = try_mutant(None, all_tests, args.timeout * 2)
    print(f"baseline ({len(all_tests)} tests): {baseline['result']} in {baseline['seconds']} s", flush=True)
    if baseline["result"] != "passed":
        print(f"mutants: the named tests fail without a mutant: {baseline['pytest']}", file=sys.stderr)
        return 1
    with ThreadPoolExecutor(max(1, args.jobs)) as pool:
        results = []
        for result in pool.map(lambda m: try_mutant(m, m.tests, args.timeout), chosen):
            print(f"{result['name']:34} {result['result']:11} {result['seconds']:7.1f} s", flush=True)
            results.append(result)
    wall = time.perf_counter() - start
    caught = sum(r["result"] == "caught" for r in results)

    print("\n| mutant | file | result | seconds |\n|---|---|---|---|")
    for r in results:
        print(f"| {r['name']} | {r['file']} | {r['result']} | {r['seconds']} |")
    print(f"\n{caught} of {len(results)} caught; wall time {wall:.0f} s (baseline included)")
    if args.json:
        print(json.dumps({"caught": caught, "total": len(results), "wall_s": round(wall, 1),
                          "baseline": baseline, "mutants": results}))
    return 0 if caught == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
