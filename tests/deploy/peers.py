"""Small programs the two-host test runs inside a network namespace (``ip netns exec NS python -m ...``).

Long-running neighbours (they write what they receive as JSON lines to OUT and run until SIGTERM):
  collector OUT                    ErrorBus collector: SUB bound on *:7150, every message
  twin OUT                         SystemDigitalTwin: REP bound on *:7120, every request, answers success
One-shot probes (print one JSON line):
  legacy HOST PORT JSON [TIMEOUT]  a legacy REQ client: {"reply": ...} or {"timeout": true}
  native ENDPOINT TOKEN AGENT ACTION ARGS [TIMEOUT]   {"result": ...} or {"error": code, "message": ...}
  http URL [TIMEOUT]               {"status": code, "body": text} or {"error": ...}
"""
from __future__ import annotations

import json
import signal
import sys
import urllib.error
import urllib.request
from pathlib import Path

import zmq


def _serve(kind: int, port: int, out: Path, answer: bool) -> int:
    context = zmq.Context()
    sock = context.socket(kind)
    if kind == zmq.SUB:
        sock.setsockopt_string(zmq.SUBSCRIBE, "")
    sock.bind(f"tcp://*:{port}")
    running = [True]
    signal.signal(signal.SIGTERM, lambda *_: running.__setitem__(0, False))
    with out.open("a", buffering=1) as sink:
        sink.write(json.dumps({"listening": port}) + "\n")
        while running[0]:
            if not sock.poll(100):
                continue
            frames = sock.recv_multipart()
            text = b"".join(frames).decode("utf-8", "replace")
            sink.write(json.dumps({"message": text}) + "\n")
            if answer:
                sock.send_json({"status": "success"})
    sock.close(linger=0)
    context.term()
    return 0


def _legacy(host: str, port: str, request: str, timeout_s: float) -> dict:
    context = zmq.Context()
    sock = context.socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(f"tcp://{host}:{port}")
    try:
        sock.send(request.encode("utf-8"))
        if not sock.poll(int(timeout_s * 1000)):
            return {"timeout": True}
        return {"reply": json.loads(sock.recv().decode("utf-8"))}
    finally:
        sock.close(linger=0)
        context.term()


def _native(endpoint: str, token: str, agent: str, action: str, args: str, timeout_s: float) -> dict:
    from bus.client import HubClient
    from bus.errors import HubError

    try:
        with HubClient(endpoint, token=token, timeout=timeout_s) as client:
            return {"result": client.call(agent, action, json.loads(args))}
    except HubError as err:
        return {"error": err.code, "message": err.message}
    except Exception as exc:        # no reply within the timeout, connection refused
        return {"error": "no_reply", "message": repr(exc)}


def _http(url: str, timeout_s: float) -> dict:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            return {"status": resp.status, "body": resp.read().decode("utf-8", "replace")}
    except urllib.error.HTTPError as err:
        return {"status": err.code, "body": err.read().decode("utf-8", "replace")}
    except Exception as exc:
        return {"error": repr(exc)}


def main(argv: list[str]) -> int:
    command, rest = argv[0], argv[1:]
    if command == "collector":
        return _serve(zmq.SUB, 7150, Path(rest[0]), answer=False)
    if command == "twin":
        return _serve(zmq.REP, 7120, Path(rest[0]), answer=True)
    if command == "legacy":
        result = _legacy(rest[0], rest[1], rest[2], float(rest[3]) if len(rest) > 3 else 5.0)
    elif command == "native":
        result = _native(*rest[:5], float(rest[5]) if len(rest) > 5 else 10.0)
    elif command == "http":
        result = _http(rest[0], float(rest[1]) if len(rest) > 1 else 5.0)
    else:
        print(f"unknown command {command}", file=sys.stderr)
        return 2
    print(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
