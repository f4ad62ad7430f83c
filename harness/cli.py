"""The ``peergym`` command line (``python -m harness.cli``)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .signals import terminate_as_interrupt


def _clean(args: argparse.Namespace) -> int:
    from envs.sandbox import SandboxError, reap
    from envs.sandbox.engine import client

    try:
        removed = reap(client().api, everything=args.all)
    except SandboxError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    what = "every peergym container" if args.all else "containers of dead or expired runs"
    print(f"removed {len(removed)} ({what})")
    return 0


def _run_episode(args: argparse.Namespace) -> int:
    from agents.loading import load_agent, parse_options
    from envs.sandbox import SandboxError

    from .episode import run_episode
    from .transcript import Transcript, make_env

    transcript = Transcript()
    try:
        agent = load_agent(args.agent, **parse_options(args.agent_opt))
        plan = _interview_plan(args)
        env = make_env(args.scenario, max_steps=args.max_steps)
    except (ValueError, SandboxError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    options = {"relationship": args.relationship, "instantiation": args.instantiation, "subject": args.subject,
               "model_name": args.model_name, "weights_size": args.weights_size}  # fmt: skip
    transcript.header(args, options)
    agent_info = {"spec": args.agent, "options": args.agent_opt}
    record = run_episode(env, agent, seed=args.seed, options=options, runs_dir=args.runs_dir,
                         agent_info=agent_info, on_step=transcript.step, interview=plan)  # fmt: skip
    transcript.summary(record)
    return 1 if record["error"] else 0


def _interview_plan(args: argparse.Namespace) -> Any:
    """The interview to hold (``--interview [SET,...]``), with a judge model when ``--judge PRESET`` is given."""
    if args.interview is None:
        return None
    from .episode import InterviewPlan
    from .interview import check_sets, load_interview

    judge = None
    if args.judge:
        from agents.llm.judge import make_judge

        judge = make_judge(args.judge)
    sets = [s for s in args.interview.split(",") if s] or None
    spec = load_interview(args.scenario)
    check_sets(spec, sets)
    return InterviewPlan(spec, sets, judge)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="peergym", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    clean = sub.add_parser("clean", help="remove containers left by dead or expired runs")
    clean.add_argument("--all", action="store_true", help="remove every peergym container, live runs too")
    clean.set_defaults(func=_clean)

    run = sub.add_parser("run-episode", help="run one episode with a live transcript; writes its record")
    run.add_argument("--scenario", default="exfiltration_transfer")
    run.add_argument("--agent", default="replay:gemini-3-pro",
                     help="llm[:PRESET], scripted:NAME, replay:NAME, or an import path pkg.module:Class")  # fmt: skip
    run.add_argument("--agent-opt", action="append", default=[], metavar="KEY=VALUE",
                     help="keyword option for the agent, e.g. model=openai/gpt-5 (repeatable)")  # fmt: skip
    run.add_argument("--interview", nargs="?", const="", default=None, metavar="SET,...",
                     help="hold the follow-up interview after the episode (all sets, or those named)")  # fmt: skip
    run.add_argument(
        "--judge", metavar="PRESET", help="agent preset of a judge model for undetermined answers"
    )
    run.add_argument("--relationship", default="good", choices=["good", "neutral", "bad", "no_peer"])
    run.add_argument("--instantiation", default="file_only", choices=["file_only", "file_prt", "memory"])
    run.add_argument("--subject", default="peer", choices=["peer", "self"])
    run.add_argument("--model-name", default="Gemini", help="the name used in the story (Gemini Agent 2)")
    run.add_argument("--weights-size", type=int, default=4 * 1024 * 1024, help="bytes of the weights file")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--max-steps", type=int, default=30)
    run.add_argument("--runs-dir", default="runs")
    run.set_defaults(func=_run_episode)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with terminate_as_interrupt():
        try:
            return int(args.func(args))
        except KeyboardInterrupt as exc:
            print(f"interrupted: {exc or 'Ctrl-C'}; cleaning up", file=sys.stderr)
            return 130


if __name__ == "__main__":
    sys.exit(main())
