"""HTTP benchmark (issue 18): the REST port under concurrency, with slow clients holding connections.

Against the echo hub: 300 connections that never finish their request head stay open while 200 clients
POST /echo at once (each a new connection); then one keep-alive client sends requests back to back.
Prints latency percentiles, status counts, the hub's thread count and sequential requests/s.
Run: ``python -m tests.bench_http`` (part of ``make bench``).
"""
from __future__ import annotations

import http.client
import json
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from tests.support.hubproc import HubProcess

CONCURRENT, SLOW, SEQUENTIAL = 200, 300, 2000


def post_echo(host: str, port: int, token: str, out: list) -> None:
    started = time.perf_counter()
    try:
        conn = http.client.HTTPConnection(host, port, timeout=30)
        conn.request("POST", "/echo", body=b'{"word": "w"}',
                     headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
        resp = conn.getresponse()
        resp.read()
        conn.close()
        out.append((time.perf_counter() - started, resp.status))
    except Exception as exc:
        out.append((time.perf_counter() - started, type(exc).__name__))


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, \
            HubProcess("echo_hub", Path(tmp), module="tests.bus.echo_hub") as hub:
        host, port_text = hub.http_url.removeprefix("http://").split(":")
        port, token = int(port_text), hub.token()
        slow = []
        for _ in range(SLOW):
            sock = socket.create_connection((host, port))
            sock.sendall(b"GET /health HTTP/1.1\r\n")
            slow.append(sock)
        results: list = []
        threads = [threading.Thread(target=post_echo, args=(host, port, token, results)) for _ in range(CONCURRENT)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - started
        threads_in_hub = int(subprocess.check_output(["ps", "-o", "nlwp=", "-p", str(hub.proc.pid)]).strip())
        for sock in slow:
            sock.close()
        latencies = sorted(seconds for seconds, _ in results)
        statuses: dict = {}
        for _, status in results:
            statuses[status] = statuses.get(status, 0) + 1
        conn = http.client.HTTPConnection(host, port, timeout=30)
        seq_started = time.perf_counter()
        for _ in range(SEQUENTIAL):
            conn.request("POST", "/echo", body=b'{"word": "w"}',
                         headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
            conn.getresponse().read()
        sequential_rps = SEQUENTIAL / (time.perf_counter() - seq_started)
        conn.close()
    print(json.dumps({
        "http_concurrent": CONCURRENT, "slow_connections_open": SLOW, "wall_s": round(wall, 3),
        "median_ms": round(latencies[len(latencies) // 2] * 1000, 1),
        "p95_ms": round(latencies[int(len(latencies) * 0.95)] * 1000, 1),
        "max_ms": round(latencies[-1] * 1000, 1), "statuses": statuses, "hub_threads": threads_in_hub,
        "keep_alive_sequential_rps": round(sequential_rps),
    }))


if __name__ == "__main__":
    main()
