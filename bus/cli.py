"""hubctl's generic commands: operate any hub from a shell.

    hubctl ping [ENDPOINT] [--timeout S]
    hubctl call [ENDPOINT] AGENT ACTION [JSON-ARGS]
    hubctl route [ENDPOINT] METHOD PATH [JSON-BODY]
    hubctl health [ENDPOINT] [--wait S]     (exit 0 when "ok"; --wait: poll until ok, exit 1 when S pass)
    hubctl actions [ENDPOINT]
    hubctl events [ENDPOINT] [TOPIC]
    hubctl token [--data-dir DIR] [--sub NAME] [--scope AGENT ...] [--ttl S]
    hubctl curve-keys

The bus knows no hub: ``build_parser(hubs)`` takes the hubs a command may name (``NamedHub``: ports and
data dir). The ``hubctl`` console script is ``agents/hubctl.py``, which names ``memory`` and ``models`` and
adds the hub-aware commands (verify, forward, migrate); ``python -m bus.cli`` serves the generic commands
with explicit endpoints only.

ENDPOINT: a named hub (on 127.0.0.1, shifted by PORT_OFFSET; the first one is the default), ``host:port``
or ``tcp://host:port``. Commands that need a token take ``--token``, else ``$HUB_TOKEN``, else mint an
admin token from the named hub's secret file (or ``--data-dir``).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any
from collections.abc import Callable, Mapping

import msgpack
import zmq

from bus.client import HubClient, NamedHub, local_endpoint, resolve_endpoint
from bus.errors import HubError
from bus.tokens import TokenService, read_secret, secret_path

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2
Command = Callable[[argparse.Namespace], int]
AddCommand = Callable[[str, Command, str], argparse.ArgumentParser]


def main(argv: list[str] | None = None) -> int:
    """``python -m bus.cli``: the generic commands, endpoints given as host:port or tcp://..."""
    parser, _ = build_parser({})
    return run(parser, argv)


def run(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> int:
    """Parse, run the command, map errors to exit codes (1: the hub said no, 2: usage)."""
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except HubError as err:
        print(f"hubctl: {err.code}: {err.message}", file=sys.stderr)
        return EXIT_FAIL
    except (ValueError, FileNotFoundError, PermissionError) as exc:
        print(f"hubctl: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_OK


def build_parser(hubs: Mapping[str, NamedHub]) -> tuple[argparse.ArgumentParser, AddCommand]:
    """The generic commands, knowing ``hubs`` by name; returns ``add(name, func, help)`` for more commands."""
    parser = argparse.ArgumentParser(prog="hubctl", description="Operate the hubs")
    parser.set_defaults(hubs=dict(hubs))
    sub = parser.add_subparsers(dest="command", required=True)
    default_hub = next(iter(hubs), None)

    def add(name: str, func: Command, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text)
        p.set_defaults(func=func)
        return p

    endpoint_help = " | ".join([*hubs, "host:port", "tcp://..."])

    def common(p: argparse.ArgumentParser, endpoint: bool = True) -> None:
        if endpoint:
            p.add_argument("endpoint", nargs="?", default=default_hub, help=endpoint_help)
        p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for a reply")
        p.add_argument("--token", default=None, help="JWT (default $HUB_TOKEN, else minted from --data-dir)")
        p.add_argument("--data-dir", default=None, help="hub data dir holding jwt.secret")
        p.add_argument("--curve-server-key", default=os.environ.get("HUB_CURVE_SERVER_KEY"),
                       help="server public key (z85) when the hub requires CURVE")
        p.add_argument("--json", action="store_true", help="send JSON instead of msgpack")

    common(add("ping", cmd_ping, "round trip to a hub"))
    p = add("call", cmd_call, "call AGENT ACTION with JSON args")
    common(p, endpoint=False)
    p.add_argument("target", nargs="+", help="[ENDPOINT] AGENT ACTION [JSON-ARGS]")
    p = add("route", cmd_route, "call a seed route: [ENDPOINT] METHOD PATH [JSON-BODY]")
    common(p, endpoint=False)
    p.add_argument("target", nargs="+")
    p = add("health", cmd_health, "print the hub's health checks (exit 0 when ok)")
    common(p)
    p.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                   help="poll until the hub is ok (exit 0) or SECONDS pass (exit 1)")
    common(add("actions", cmd_actions, "print the action table"))
    p = add("events", cmd_events, "subscribe to hub events and print them")
    p.add_argument("endpoint", nargs="?", default=default_hub, help=endpoint_help)
    p.add_argument("topic", nargs="?", default="", help="topic prefix, e.g. context.")
    p.add_argument("--count", type=int, default=0, help="stop after N events (0 = forever)")
    p.add_argument("--timeout", type=float, default=0, help="stop after S seconds without events (0 = never)")
    p = add("token", cmd_token, "mint an admin JWT from the hub's secret file")
    p.add_argument("--data-dir", default=hubs[default_hub].data_dir if default_hub else None)
    p.add_argument("--secret-file", default="")
    p.add_argument("--sub", default="admin")
    p.add_argument("--scope", action="append", default=None, help="agent name (repeatable); default *")
    p.add_argument("--ttl", type=int, default=3600)
    add("curve-keys", cmd_curve_keys, "generate a CURVE key pair (z85) for config")
    return parser, add


def forward_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments of a ``forward`` command (``bus.forwarder.run_from_args``, imported only when it runs)."""
    p.add_argument("--config", default=None, help="YAML with a `forwarder:` section")
    p.add_argument("--remote-host", default=None, help="the remote hub's host (default from config)")
    p.add_argument("--remote-offset", type=int, default=None, help="PORT_OFFSET of the remote hub's host")
    p.add_argument("--bind-host", default=None, help="local bind address")
    p.add_argument("--ports", default=None, help="comma-separated local legacy ports")


def _client(args: argparse.Namespace, endpoint: str | None) -> HubClient:
    return HubClient(resolve_endpoint(endpoint, args.hubs), token=_token(args, endpoint), timeout=args.timeout,
                     encoding="json" if args.json else "msgpack", curve_server_key=args.curve_server_key)


def _token(args: argparse.Namespace, endpoint: str | None) -> str | None:
    if args.token:
        return str(args.token)
    if os.environ.get("HUB_TOKEN"):
        return os.environ["HUB_TOKEN"]
    data_dir = args.data_dir or (args.hubs[endpoint].data_dir if endpoint in args.hubs else None)
    if not data_dir:
        return None
    path = secret_path(data_dir)
    if not path.exists():
        return None
    token, _ = TokenService(read_secret(path)).mint("hubctl", ttl_s=600)
    return token


def cmd_ping(args: argparse.Namespace) -> int:
    with _client(args, args.endpoint) as client:
        try:
            rtt = client.ping()
        except HubError as err:
            print(f"hubctl: no answer from {client.endpoint}: {err.message}", file=sys.stderr)
            return EXIT_FAIL
        print(f"pong from {client.endpoint} in {rtt * 1000:.2f} ms")
    return EXIT_OK


def _split_target(target: list[str], minimum: int, hubs: Mapping[str, NamedHub]) -> tuple[str | None, list[str]]:
    if len(target) > minimum and (target[0] in hubs or ":" in target[0]):
        return target[0], target[1:]
    return next(iter(hubs), None), target


def cmd_call(args: argparse.Namespace) -> int:
    endpoint, rest = _split_target(args.target, 2, args.hubs)
    if len(rest) < 2:
        raise ValueError("usage: hubctl call [ENDPOINT] AGENT ACTION [JSON-ARGS]")
    call_args = _json_arg(rest[2]) if len(rest) > 2 else {}
    with _client(args, endpoint) as client:
        _print(client.call(rest[0], rest[1], call_args))
    return EXIT_OK


def cmd_route(args: argparse.Namespace) -> int:
    endpoint, rest = _split_target(args.target, 2, args.hubs)
    if len(rest) < 2:
        raise ValueError("usage: hubctl route [ENDPOINT] METHOD PATH [JSON-BODY]")
    body = _json_arg(rest[2]) if len(rest) > 2 else None
    with _client(args, endpoint) as client:
        _print(client.route(rest[0].upper(), rest[1], body))
    return EXIT_OK


def cmd_health(args: argparse.Namespace) -> int:
    until = time.monotonic() + max(0.0, args.wait)
    report = _health_report(args, until)
    while (report is None or report["status"] != "ok") and time.monotonic() < until:
        time.sleep(min(0.25, max(0.0, until - time.monotonic())))
        report = _health_report(args, until)
    if report is None:
        print(f"hubctl: no health reply from {resolve_endpoint(args.endpoint, args.hubs)}", file=sys.stderr)
        return EXIT_FAIL
    print(f"{report.get('hub')} {report.get('version')}: {report['status']}")
    for name, check in sorted(report.get("checks", {}).items()):
        print(f"  {'ok ' if check['ok'] else 'FAIL'}  {name}: {json.dumps(check.get('detail'), default=str)}")
    return EXIT_OK if report["status"] == "ok" else EXIT_FAIL


def _health_report(args: argparse.Namespace, until: float) -> dict[str, Any] | None:
    """The hub's health report; None while it does not answer (a hub still starting) and --wait is set."""
    timeout = args.timeout if args.wait <= 0 else max(0.1, min(args.timeout, until - time.monotonic()))
    try:
        with _client(args, args.endpoint) as client:
            report: dict[str, Any] = client.call("hub", "health", timeout=timeout)
            return report
    except HubError:
        if args.wait > 0:
            return None
        raise


def cmd_actions(args: argparse.Namespace) -> int:
    with _client(args, args.endpoint) as client:
        table = client.call("hub", "actions")
    for agent, actions in table["actions"].items():
        print(agent)
        for name, info in actions.items():
            fields = ", ".join(f"{f}:{d['type']}{'' if d.get('required') else '?'}"
                               for f, d in info["schema"]["fields"].items())
            print(f"  {name}({fields})  {info['doc'].splitlines()[0] if info['doc'] else ''}")
    for route in table["routes"]:
        print(f"{route['method']:6} {route['path']:32} -> {route['agent']}.{route['action']}")
    return EXIT_OK


def cmd_events(args: argparse.Namespace) -> int:
    if args.endpoint in args.hubs:
        endpoint = local_endpoint(args.hubs[args.endpoint].events_port, os.environ)
    else:
        endpoint = resolve_endpoint(args.endpoint, args.hubs)
    sock = zmq.Context.instance().socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    sock.setsockopt_string(zmq.SUBSCRIBE, args.topic)
    seen = 0
    try:
        while not args.count or seen < args.count:
            if not sock.poll(int(args.timeout * 1000) if args.timeout else None):
                break
            topic, payload = sock.recv_multipart()
            print(json.dumps({"topic": topic.decode(), **msgpack.unpackb(payload, raw=False)}, default=str),
                  flush=True)
            seen += 1
    finally:
        sock.close()
    return EXIT_OK


def cmd_token(args: argparse.Namespace) -> int:
    if not (args.secret_file or args.data_dir):
        raise ValueError("give --data-dir (the hub's data directory) or --secret-file")
    path = Path(args.secret_file) if args.secret_file else secret_path(args.data_dir)
    token, claims = TokenService(read_secret(path)).mint(args.sub, scopes=args.scope or ["*"], ttl_s=args.ttl)
    print(f"# sub={claims['sub']} scope={','.join(claims['scope'])} expires={time.ctime(claims['exp'])}",
          file=sys.stderr)
    print(token)
    return EXIT_OK


def cmd_curve_keys(args: argparse.Namespace) -> int:
    public, secret = zmq.curve_keypair()
    print(f"public_key: {public.decode()}\nsecret_key: {secret.decode()}")
    return EXIT_OK


def _json_arg(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ValueError(f"not valid JSON: {text!r}") from exc


def _print(obj: Any) -> None:
    print(json.dumps(obj, indent=2, default=str))


if __name__ == "__main__":
    sys.exit(main())
