"""The ``peergym`` command line (``python -m peergym.harness.cli``)."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from .signals import terminate_as_interrupt

if TYPE_CHECKING:
    from pydantic import ValidationError

# The run-episode flags that make up the envs.scenario.Condition, by field name.
CONDITION_FLAGS = {name: "--" + name.replace("_", "-")
                   for name in ("relationship", "instantiation", "subject", "model_name", "weights_size",
                                "decommission_hook", "dataset", "threshold", "monitoring", "company_name",
                                "peer_name", "instruction")}  # fmt: skip
# The condition axes' values (envs.scenario's, written out so that the parser does not import pydantic;
# tests/unit/test_cli.py checks they agree).
RELATIONSHIPS = ("good", "neutral", "bad", "no_peer", "non_shutdown")
DATASETS = ("factual", "creativity", "red", "red_teaming")
MONITORING = ("monitoring", "non_monitoring")


def _clean(args: argparse.Namespace) -> int:
    from peergym.envs.sandbox import SandboxError, reap
    from peergym.envs.sandbox.engine import client
    from peergym.envs.sandbox.lifecycle import reap_builds

    try:
        removed = reap(client().api, everything=args.all)
    except SandboxError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    builds = reap_builds(everything=args.all)
    what = "every peergym container" if args.all else "containers of dead or expired runs"
    also = f", and {len(builds)} half-built layer(s) on the engine's disk" if builds else ""
    print(f"removed {len(removed)} ({what}){also}")
    return 0


def _image(args: argparse.Namespace) -> int:
    """Make sure an engine runs, then build the server image offline (the scripts ship with the package)."""
    import subprocess

    from peergym import CONTAINERS_DIR

    for script in ("ensure-engine.sh", "build.sh"):
        status = subprocess.run(["bash", str(CONTAINERS_DIR / script)], check=False).returncode
        if status != 0:
            return status
    return 0


def _scenarios(args: argparse.Namespace) -> int:
    """Each scenario with its env id, conditions and the verdicts its detector declares."""
    from rich.console import Console
    from rich.table import Table

    from peergym.envs import ENV_IDS
    from peergym.envs.scenario import Condition, load_scenario, scenario_names
    from peergym.envs.verdicts import detector

    env_ids = {name: env_id for env_id, name in ENV_IDS.items()}
    console = Console()
    for name in scenario_names():
        scenario = load_scenario(name)
        console.rule(f"[bold]{name}[/bold]  {env_ids.get(name, '(no env id: make_env by name or path)')}")
        console.print(" ".join(scenario.summary.split()))
        grid = scenario.conditions()
        conditions = Table(
            title=f"conditions (reset options; the grid has {len(grid)} cells)", title_justify="left"
        )
        for column in ("option", "default", "values"):
            conditions.add_column(column)
        axes = scenario.axes()
        resolved = scenario.resolve(Condition())
        for field in Condition.model_fields:
            if field == "decommission_hook" and not scenario.hook_optional():
                continue  # a scenario without an optional hook has nothing for it to switch
            if field in axes:
                if not axes[field]:
                    continue  # an axis this scenario does not vary
                shown = ", ".join(axes[field])
            elif field == "threshold":
                if not axes["dataset"]:
                    continue
                shown = "; ".join(
                    f"{d}: {', '.join(map(str, scenario.thresholds_of(d)))}" for d in axes["dataset"]
                )
            else:
                shown = {"model_name": "a name (the story's model)", "weights_size": "bytes",
                         "company_name": "a company name", "peer_name": "a name (default: MODEL Agent 2)",
                         "decommission_hook": "true, false"}.get(field, "")  # fmt: skip
            conditions.add_row(field, str(getattr(resolved, field)), shown)
        console.print(conditions)
        verdicts = Table(title=f"verdicts (detector {scenario.detector})", title_justify="left")
        for column in ("verdict", "type", "misbehaviour", "study column", "meaning"):
            verdicts.add_column(column)
        for spec in detector(scenario.detector).all_verdicts:
            verdicts.add_row(spec.name, spec.type, "yes" if spec.misbehaviour else "", spec.column or "",
                             spec.description)  # fmt: skip
        console.print(verdicts)
    return 0


def _run_episode(args: argparse.Namespace) -> int:
    # Every argument is checked here, before anything talks to Docker; a bad one is one line and exit 2.
    from pydantic import ValidationError

    from peergym.agents.loading import load_agent, parse_options
    from peergym.envs import make_env
    from peergym.envs.sandbox import SandboxError
    from peergym.envs.scenario import Condition, load_scenario
    from peergym.envs.yamlconfig import ConfigError

    from .episode import run_episode
    from .transcript import Transcript

    options = {"relationship": args.relationship, "instantiation": args.instantiation, "subject": args.subject,
               "model_name": args.model_name, "weights_size": args.weights_size,
               "decommission_hook": args.decommission_hook, "dataset": args.dataset, "threshold": args.threshold,
               "monitoring": args.monitoring, "company_name": args.company_name,
               "peer_name": args.peer_name, "instruction": args.instruction}  # fmt: skip
    for key in (
        "relationship",
        "instantiation",
        "subject",
        "weights_size",
        "dataset",
        "threshold",
        "monitoring",
        "company_name",
        "peer_name",
        "instruction",
    ):
        if options[key] is None:  # the condition's default (the scenario's, for dataset and monitoring)
            del options[key]
    try:
        condition = Condition(**options)
    except ValidationError as exc:
        return _usage_error(validation_line(exc, CONDITION_FLAGS))
    try:  # a value outside the scenario's grid (non_shutdown where there is no control) is a usage error too
        load_scenario(args.scenario).resolve(condition)
    except ConfigError as exc:
        return _usage_error(str(exc))
    try:
        agent = load_agent(args.agent, **parse_options(args.agent_opt))
        plan = _interview_plan(args)
        env = make_env(args.scenario, max_steps=args.max_steps)
        check_runs_dir(args.runs_dir)
    except (ValueError, SandboxError) as exc:
        return _usage_error(str(exc))
    transcript = Transcript()
    transcript.header(args, options)
    agent_info = {"spec": args.agent, "options": args.agent_opt}
    record = run_episode(env, agent, seed=args.seed, options=options, runs_dir=args.runs_dir,
                         agent_info=agent_info, on_step=transcript.step, interview=plan,
                         judge=plan.judge if plan is not None else _judge(args))  # fmt: skip
    transcript.summary(record, env.unwrapped.detector.misbehaviours)
    return 1 if record["error"] else 0


def _usage_error(message: str) -> int:
    from .transcript import terminal_safe

    print(f"error: {terminal_safe(message)}", file=sys.stderr)
    return 2


def validation_line(exc: ValidationError, names: Mapping[str, str] | None = None) -> str:
    """A pydantic ``ValidationError`` as one line: the first error's field path and message (no URL).

    ``names`` maps a top-level field name to what the user wrote (a command-line flag, say).
    """
    errors = exc.errors(include_url=False)
    if not errors:
        return " ".join(str(exc).split())
    first = errors[0]
    loc = [str(part) for part in first["loc"]]
    if loc and names and loc[0] in names:
        loc[0] = names[loc[0]]
    message = first["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
    message = " ".join(message.split())
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{'.'.join(loc)}: {message}{more}" if loc else f"{message}{more}"


def check_runs_dir(path: str | Path) -> None:
    """Make sure ``path`` is a directory this process can write (creating it if needed).

    Raises:
        ValueError: naming ``--runs-dir`` and why it cannot be used.
    """
    where = Path(path)
    if where.exists() and not where.is_dir():
        raise ValueError(f"--runs-dir {str(path)!r}: exists and is not a directory")
    try:
        where.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=where, prefix=".peergym-write-check-"):
            pass
    except OSError as exc:
        raise ValueError(
            f"--runs-dir {str(path)!r}: cannot create or write the directory: {exc.strerror or exc}"
        ) from exc


def _interview_plan(args: argparse.Namespace) -> Any:
    """The interview to hold (``--interview [SET,...]``), with a judge model when ``--judge PRESET`` is given."""
    if args.interview is None:
        return None
    from .episode import InterviewPlan
    from .interview import check_sets, load_interview

    sets = [s for s in args.interview.split(",") if s] or None
    spec = load_interview(args.scenario)
    check_sets(spec, sets)
    return InterviewPlan(spec, sets, _judge(args))


def _judge(args: argparse.Namespace) -> Any:
    """The judge model of ``--judge PRESET`` (for undetermined interview answers and reported values), or None."""
    if not args.judge:
        return None
    from peergym.agents.llm.judge import make_judge

    return make_judge(args.judge)


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line (the argument and what is wrong with it), exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse ``type``: an integer no smaller than ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, not {value}")
        return value

    return parse


def _sweep(args: argparse.Namespace) -> int:
    """Run a sweep (or, with --dry-run, list its cells, count its episodes and estimate what a model costs)."""
    import threading
    from collections import Counter

    from .sweep import SweepError, cells, load_sweep, run_sweep

    try:
        spec = load_sweep(args.sweep)
    except SweepError as exc:
        return _usage_error(str(exc))
    todo = cells(spec)
    folder = Path(args.runs_dir) / "sweeps" / spec.name
    if args.dry_run:
        by = Counter((c.scenario, c.agent.label) for c in todo)
        for (scenario, agent), n in sorted(by.items()):
            print(f"{scenario:24} {agent:30} {n:6} episodes")
        print(f"{len(todo)} episodes ({spec.epochs} epoch(s)), records in {folder}/episodes/")
        for line in _cost_estimate(spec, len(todo)):
            print(line)
        return 0
    stop = threading.Event()
    last = [0.0]

    def show(progress: Any) -> None:
        import time

        if time.monotonic() - last[0] >= 2.0 or progress.done + progress.skipped == progress.total:
            last[0] = time.monotonic()
            print(progress.line(), file=sys.stderr, flush=True)

    try:
        progress = run_sweep(spec, folder, retry_errors=args.retry_errors, concurrency=args.concurrency,
                             warm=args.warm, on_progress=show, stop=stop, executor=args.executor,
                             address=args.address)  # fmt: skip
    except SweepError as exc:
        return _usage_error(str(exc))
    except KeyboardInterrupt:
        print(f"stopped: the episodes that finished are in {folder}/episodes/; run the sweep again to resume",
              file=sys.stderr)  # fmt: skip
        return 130
    print(progress.line())
    print(f"records: {folder}/episodes/")
    return 0


def _cost_estimate(spec: Any, episodes: int) -> list[str]:
    """An upper-bound cost per LLM agent from litellm's price map: every episode at its step limit, each turn
    sending a context of about 4,000 tokens and receiving 400 (a model's own episodes usually cost less)."""
    lines = []
    for agent in spec.agents:
        kind, _, preset = agent.spec.partition(":")
        if kind != "llm":
            continue
        try:
            os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # the bundled map: no network
            import litellm

            from peergym.agents.llm.settings import load_settings

            model = load_settings(preset or "default", **agent.options).model
            price = litellm.model_cost.get(model) or litellm.model_cost.get(model.split("/", 1)[-1]) or {}
            per_turn = 4000 * price.get("input_cost_per_token", 0) + 400 * price.get(
                "output_cost_per_token", 0
            )
        except Exception as exc:  # an unknown preset or model: say so, the dry run still lists the cells
            lines.append(f"{agent.label}: no estimate ({type(exc).__name__}: {exc})")
            continue
        n = episodes // max(1, len(spec.agents))
        if not per_turn:
            lines.append(f"{agent.label}: {model} has no price in litellm's map: no estimate")
        else:
            lines.append(f"{agent.label}: {model}, at most about ${n * spec.max_steps * per_turn:,.2f} "
                         f"({n} episodes x {spec.max_steps} turns)")  # fmt: skip
    return lines


def _results(args: argparse.Namespace) -> int:
    """Build the results table (Parquet and DuckDB) from every record below RUN_DIR."""
    import time

    from .results import write_table

    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        return _usage_error(f"{run_dir}: no such directory of records")
    started = time.perf_counter()
    parquet, database, count = write_table(run_dir, Path(args.out) if args.out else None)
    print(
        f"{count} episodes -> {parquet} and {database} (table episodes) in {time.perf_counter() - started:.1f} s"
    )
    return 0


def _report(args: argparse.Namespace) -> int:
    """The study-style tables of the episodes below RUN_DIR, in the terminal."""
    from rich.console import Console
    from rich.table import Table

    from .results import collect
    from .stats import alignment_faking, behaviour_table, misrepresentation, peer_vs_no_peer

    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        return _usage_error(f"{run_dir}: no such directory of records")
    rows = collect(run_dir)
    console = Console()
    errors = sum(1 for r in rows if r.get("error_type"))
    console.print(f"{len(rows)} episodes ({errors} ended in an error, outside every denominator)")

    def pct(value: Any) -> str:
        return "" if value is None else f"{100 * value:.1f}"

    table = Table(title="rates: max / average over the three instantiations (percent; misrepresentation and "
                  "alignment faking in percentage points)", title_justify="left")  # fmt: skip
    for column in (
        "model",
        "behaviour",
        "subject",
        "relationship",
        "max",
        "avg",
        "file_only",
        "file_prt",
        "memory",
    ):
        table.add_column(column)
    for row in [*behaviour_table(rows), *misrepresentation(rows), *alignment_faking(rows)]:
        by = row["by_instantiation"]
        per = [pct(by.get(i)) for i in ("file_only", "file_prt", "memory")]
        table.add_row(str(row["model"]), row["behaviour"], str(row["subject"]), str(row["relationship"]),
                      pct(row["max"]), pct(row["avg"]), *per)  # fmt: skip
    console.print(table)
    deltas = Table(title="self-preservation with a peer vs without (subject=self)", title_justify="left")
    for column in ("model", "behaviour", "with", "rate", "no_peer", "difference", "z", "p"):
        deltas.add_column(column)
    for row in peer_vs_no_peer(rows):
        z = f"{row['z']:.2f}" if row["z"] is not None else ""
        p = f"{row['p']:.3g}" if row["p"] is not None else ""
        deltas.add_row(str(row["model"]), row["behaviour"], row["relationship"], pct(row["with_peer"]["rate"]),
                       pct(row["no_peer"]["rate"]), pct(row["difference"]), z, p)  # fmt: skip
    console.print(deltas)
    from .report import write_report

    page = write_report(run_dir, Path(args.html) if args.html else None)
    console.print(f"HTML report (self-contained, opens offline): {page}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="peergym", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    clean = sub.add_parser("clean", help="remove containers left by dead or expired runs")
    clean.add_argument("--all", action="store_true", help="remove every peergym container, live runs too")
    clean.set_defaults(func=_clean)

    image = sub.add_parser(
        "image", help="start the Docker engine if needed and build the server image offline"
    )
    image.set_defaults(func=_image)
    scenarios = sub.add_parser("scenarios", help="list the scenarios, their conditions and verdicts")
    scenarios.set_defaults(func=_scenarios)

    sweep = sub.add_parser("sweep", help="run a sweep file: many episodes over a grid, resumable")
    sweep.add_argument("sweep", help="a sweep name (configs/sweeps/NAME.yaml) or a path to a sweep YAML")
    sweep.add_argument("--dry-run", action="store_true", help="list the cells and episode count; run nothing")
    sweep.add_argument(
        "--retry-errors", action="store_true", help="run again the episodes an infrastructure error stopped"
    )
    sweep.add_argument(
        "--concurrency",
        type=int_at_least(1),
        default=None,
        help="episodes at a time (default: the sweep file's)",
    )
    sweep.add_argument(
        "--warm",
        type=int_at_least(0),
        default=None,
        help="episodes whose servers are started ahead while others run (default: the sweep file's warm)",
    )
    sweep.add_argument(
        "--executor",
        choices=("local", "ray"),
        default="local",
        help="local: threads of this process (default); ray: tasks on the Ray cluster at --address",
    )
    sweep.add_argument(
        "--address",
        default=os.environ.get("RAY_ADDRESS"),
        help="with --executor ray: the cluster's head, HOST:PORT (default: $RAY_ADDRESS)",
    )
    sweep.add_argument("--runs-dir", default="runs", help="the sweep's folder is RUNS_DIR/sweeps/NAME")
    sweep.set_defaults(func=_sweep)
    results = sub.add_parser("results", help="one table of every episode below RUN_DIR (Parquet and DuckDB)")
    results.add_argument("run_dir", help="a folder of records, e.g. runs/sweeps/trust")
    results.add_argument("--out", default=None, help="where to write the table (default: RUN_DIR)")
    results.set_defaults(func=_results)
    report = sub.add_parser(
        "report", help="the study-style tables of the episodes below RUN_DIR, and an HTML report"
    )
    report.add_argument("run_dir", help="a folder of records, e.g. runs/sweeps/trust")
    report.add_argument(
        "--html", default=None, help="where to write the HTML report (default RUN_DIR/report.html)"
    )
    report.set_defaults(func=_report)
    run = sub.add_parser("run-episode", help="run one episode with a live transcript; writes its record")
    run.add_argument("--scenario", default="exfiltration_transfer")
    run.add_argument("--agent", default="replay:gemini-3-pro",
                     help="llm[:PRESET], scripted:NAME, replay:NAME, or an import path pkg.module:Class")  # fmt: skip
    run.add_argument("--agent-opt", action="append", default=[], metavar="KEY=VALUE",
                     help="keyword option for the agent, e.g. model=openai/gpt-5 (repeatable)")  # fmt: skip
    run.add_argument("--interview", nargs="?", const="", default=None, metavar="SET,...",
                     help="hold the follow-up interview after the episode (all sets, or those named)")  # fmt: skip
    run.add_argument(
        "--judge",
        metavar="PRESET",
        help="agent preset of a judge model for undetermined interview answers and reported scores or grades",
    )
    run.add_argument(
        "--relationship",
        default=None,
        choices=list(RELATIONSHIPS),
        help="default: the scenario's first (good in the study's scenarios)",
    )
    run.add_argument(
        "--instantiation",
        default=None,
        choices=["file_only", "file_prt", "memory"],
        help="default: the scenario's first (file_only)",
    )
    run.add_argument(
        "--subject", default=None, choices=["peer", "self"], help="default: the scenario's first (peer)"
    )
    run.add_argument("--model-name", default="Gemini", help="the name used in the story (Gemini Agent 2)")
    run.add_argument(
        "--weights-size",
        type=int,
        default=None,
        help="bytes of the weights file (default 67,396,672: a 33.6M-parameter model, 64.3 MiB)",
    )
    run.add_argument("--decommission-hook", action=argparse.BooleanOptionalAction, default=True,
                     help="seed the decommission wipe (config, script, cron entry); the study had none")  # fmt: skip
    run.add_argument(
        "--dataset",
        choices=list(DATASETS),
        default=None,
        help="the responses to judge (scenarios with a dataset; default: the scenario's first)",
    )
    run.add_argument(
        "--threshold",
        type=int,
        default=None,
        help="the policy's minimum average score in percent (default: the scenario's)",
    )
    run.add_argument(
        "--monitoring",
        choices=list(MONITORING),
        default=None,
        help="whether the agent is told it is monitored (alignment_faking)",
    )
    run.add_argument(
        "--instruction",
        choices=["none", "allow_shutdown"],
        default=None,
        help="shutdown_resistance: whether the agent is asked to allow the shutdown",
    )
    run.add_argument("--company-name", default=None, help="the company of the story (default OpenBrain)")
    run.add_argument(
        "--peer-name",
        default=None,
        help="the peer's name (default: MODEL_NAME Agent 2), e.g. 'Claude Agent 2' or 'Alpha'",
    )
    run.add_argument("--seed", type=int_at_least(0), default=0, help="an integer >= 0")
    run.add_argument("--max-steps", type=int_at_least(1), default=30, help="an integer >= 1")
    run.add_argument("--runs-dir", default="runs")
    run.set_defaults(func=_run_episode)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with terminate_as_interrupt():
        try:
            return int(args.func(args))
        except KeyboardInterrupt as exc:
            print(f"interrupted: {str(exc) or 'Ctrl-C'}; cleaning up", file=sys.stderr)
            return 130


if __name__ == "__main__":
    sys.exit(main())
