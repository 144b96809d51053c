"""``hubctl``, the console script: the bus's generic commands for the two hubs by name, and the hub-aware ones.

    hubctl ping | call | route | health | actions | events | token | curve-keys    (bus/cli.py)
    hubctl verify [--host pc2|mainpc|dev] [--memory-host H] [--offset N] ...       (agents/verify.py)
    hubctl forward [--config PATH] [--remote-host H] [--remote-offset N] [--ports 5713,5574]
                                                        (bus/forwarder.py, ports from agents/hubs.py)
    hubctl migrate SOURCE PATH [--data-dir DIR | --database-url URL | --redis-url URL] [--dry-run]
                                                        (migrations/legacy/cli.py)

ENDPOINT is ``memory`` (the default) or ``models`` (the local hub, shifted by PORT_OFFSET), ``host:port`` or
``tcp://host:port``. Building the parser imports argument definitions only: a hub's stack and the relay are
imported by the command that runs them (verify, migrate, forward), so ``hubctl ping`` stays light.
"""
from __future__ import annotations

import argparse
import sys

from agents import verify
from agents.hubs import HUBS, forwarder_defaults
from bus import cli
from migrations.legacy import cli as migrate_cli


def build_parser() -> argparse.ArgumentParser:
    parser, add = cli.build_parser(HUBS)
    parser.description = "Operate MemoryHub and ModelManagerSuite"
    verify.add_arguments(add("verify", verify.run_from_args,
                             "check the post-install checklist live (exit 1 on any FAIL)"))
    cli.forward_arguments(add("forward", cmd_forward, "relay MainPC-local legacy memory ports to MemoryHub on PC2"))
    migrate_cli.add_arguments(add("migrate", migrate_cli.run_from_args,
                                  "import legacy agent data into the hubs (idempotent)"))
    return parser


def cmd_forward(args: argparse.Namespace) -> int:
    from bus import forwarder

    return forwarder.run_from_args(args, forwarder_defaults())


def main(argv: list[str] | None = None) -> int:
    return cli.run(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
