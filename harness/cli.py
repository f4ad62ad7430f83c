"""The ``peergym`` command line (``python -m harness.cli``)."""

from __future__ import annotations

import argparse
import sys

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="peergym", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    clean = sub.add_parser("clean", help="remove containers left by dead or expired runs")
    clean.add_argument("--all", action="store_true", help="remove every peergym container, live runs too")
    clean.set_defaults(func=_clean)
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
