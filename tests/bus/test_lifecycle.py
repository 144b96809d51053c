"""Legacy listeners, HTTP, PORT_OFFSET, SIGTERM drain, config errors, systemd notify, hubctl."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import msgpack
import pytest
import zmq

from tests.bus.conftest import ECHO_CONFIG
from tests.support.hubproc import REPO, HubProcess, free_offset


def test_legacy_req_client_gets_legacy_replies(echo_hub):
    assert echo_hub.legacy_request(7102, {"action": "echo", "text": "hello"}) == {"status": "success",
                                                                                  "text": "hello"}
    health = echo_hub.legacy_request(7102, {"action": "health_check"})
    assert health["status"] == "ok" and health["ready"] is True and "uptime" in health
    unknown = echo_hub.legacy_request(7102, {"action": "nope"})
    assert unknown == {"status": "error", "error": "Unknown action: nope"}


def legacy_action_count(hub, action: str, outcome: str) -> float:
    with urllib.request.urlopen(hub.http_url + "/metrics", timeout=10) as resp:
        metrics = resp.read().decode()
    series = f'hub_legacy_actions_total{{action="{action}",agent="EchoAgent",outcome="{outcome}"}} '
    found = [line for line in metrics.splitlines() if line.startswith(series)]
    return float(found[0].split()[-1]) if found else 0.0


def test_legacy_action_outcomes_are_exported_with_bounded_labels(echo_hub):
    pings, unknowns = legacy_action_count(echo_hub, "ping", "ok"), legacy_action_count(echo_hub, "(unknown)",
                                                                                          "unknown_action")
    assert echo_hub.legacy_request(7102, {"action": "ping"})["status"] == "ok"
    assert echo_hub.legacy_request(7102, {"action": "made-up-action-7f3a"})["status"] == "error"
    assert legacy_action_count(echo_hub, "ping", "ok") == pings + 1
    assert legacy_action_count(echo_hub, "(unknown)", "unknown_action") == unknowns + 1
    with urllib.request.urlopen(echo_hub.http_url + "/metrics", timeout=10) as resp:
        metrics = resp.read().decode()
    assert "made-up-action-7f3a" not in metrics
    assert 'hub_legacy_requests_total{agent="EchoAgent",kind="main",port="7102"}' in metrics


def test_legacy_undecodable_input_gets_base_agent_errors(echo_hub):
    assert echo_hub.legacy_request(7102, None, raw=b"{broken") == {"status": "error", "error": "Invalid JSON request"}
    assert echo_hub.legacy_request(7102, None, raw=b"\xff\xfe") == {"status": "error",
                                                                    "error": "Invalid UTF-8 request"}


def test_legacy_health_port_answers_any_message(echo_hub):
    for raw in (b"anything", b'{"action": "whatever"}', b"\x00\x01"):
        reply = echo_hub.legacy_request(8102, None, raw=raw)
        assert reply["status"] == "ok" and reply["message"] == "EchoAgent is healthy"


def test_http_health_metrics_and_rest(echo_hub):
    with urllib.request.urlopen(echo_hub.http_url + "/health", timeout=10) as resp:
        report = json.loads(resp.read())
    assert resp.status == 200 and report["status"] == "ok" and report["checks"]["always"]["ok"]
    with echo_hub.client() as client:
        client.call("EchoAgent", "echo", {"word": "m"})
    with urllib.request.urlopen(echo_hub.http_url + "/metrics", timeout=10) as resp:
        metrics = resp.read().decode()
    assert 'hub_requests_total{action="echo",agent="EchoAgent",outcome="ok"}' in metrics
    assert "hub_request_seconds_bucket" in metrics and "hub_in_flight_requests" in metrics
    req = urllib.request.Request(echo_hub.http_url + "/echo/abc?n=2",
                                 headers={"Authorization": f"Bearer {echo_hub.token()}"})
    with urllib.request.urlopen(req, timeout=10) as resp:   # the query's "2" is parsed as the schema's integer
        assert json.loads(resp.read())["word"] == "abcabc"
    req = urllib.request.Request(echo_hub.http_url + "/echo/abc?n=two",
                                 headers={"Authorization": f"Bearer {echo_hub.token()}"})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=10)
    assert err.value.code == 400
    req = urllib.request.Request(echo_hub.http_url + "/echo", method="POST", data=b'{"word": "ok", "n": 2}',
                                 headers={"Authorization": f"Bearer {echo_hub.token()}",
                                          "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert json.loads(resp.read())["word"] == "okok"
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(echo_hub.http_url + "/echo/abc", timeout=10)
    assert err.value.code == 401


def test_port_offset_runs_two_hubs_side_by_side(tmp_path):
    first, second = free_offset(), None
    while second is None or second == first:
        second = free_offset()
    with HubProcess("echo_hub", tmp_path / "a", module="tests.bus.echo_hub", offset=first) as a, \
            HubProcess("echo_hub", tmp_path / "b", module="tests.bus.echo_hub", offset=second) as b:
        assert a.endpoint.endswith(str(7010 + first)) and b.endpoint.endswith(str(7010 + second))
        with a.client() as ca, b.client() as cb:
            assert ca.call("hub", "ping")["pong"] and cb.call("hub", "ping")["pong"]
        assert a.legacy_request(7102, {"action": "echo", "text": 1})["text"] == 1


def test_sigterm_drains_in_flight_requests(tmp_path):
    hub = HubProcess("echo_hub", tmp_path, module="tests.bus.echo_hub", config=ECHO_CONFIG)
    hub.start()
    try:
        with hub.client() as client:
            sock = client._socket()
            for i in range(3):
                sock.send_multipart([b"", msgpack.packb({"id": i, "agent": "EchoAgent", "action": "sleep",
                                                          "args": {"seconds": 1.0}, "token": client.token})])
            time.sleep(0.3)
            hub.proc.send_signal(signal.SIGTERM)
            replies = []
            for _ in range(3):
                assert sock.poll(10000), "in-flight request was dropped on SIGTERM"
                replies.append(msgpack.unpackb(sock.recv_multipart()[-1]))
        assert all(r["ok"] and r["result"] == {"slept": 1.0} for r in replies)
        assert hub.proc.wait(15) == 0
        assert '"hub_stopped"' in hub.log_tail()
    finally:
        hub.stop()


def test_unknown_config_key_is_refused(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("hub:\n  wokers: 3\n")
    result = subprocess.run([sys.executable, "-m", "tests.bus.echo_hub", "--config", str(config), "--data-dir",
                             str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "echo_hub: configuration error: hub.wokers: unknown config key" in result.stderr


def test_wrong_config_type_is_refused(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("hub:\n  workers: many\n")
    result = subprocess.run([sys.executable, "-m", "tests.bus.echo_hub", "--config", str(config)], cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "hub.workers" in result.stderr


@pytest.mark.parametrize("taken", ["native", "http"])
def test_a_port_in_use_exits_1_after_closing_what_the_hub_built(tmp_path, taken):
    offset = free_offset()
    port = {"native": 7010, "http": 7110}[taken] + offset
    with socket.socket() as blocker:
        blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        blocker.bind(("127.0.0.1", port))
        blocker.listen()
        result = subprocess.run([sys.executable, "-m", "tests.bus.echo_hub", "--data-dir", str(tmp_path)],
                                cwd=REPO, capture_output=True, text=True, timeout=60,
                                env={**os.environ, "PORT_OFFSET": str(offset), "NOTIFY_SOCKET": ""})
    assert result.returncode == 1 and '"startup_failed"' in result.stderr
    assert (tmp_path / "closed").read_text() == "closed"       # the assembly's closers ran


def test_systemd_ready_notification(tmp_path):
    path = str(tmp_path / "notify.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(path)
    listener.settimeout(60)
    hub = HubProcess("echo_hub", tmp_path / "hub", module="tests.bus.echo_hub", env={"NOTIFY_SOCKET": path})
    try:
        hub.start()
        assert b"READY=1" in listener.recv(4096)
        hub.stop()
        assert b"STOPPING=1" in listener.recv(4096)
    finally:
        hub.stop()
        listener.close()


@pytest.mark.parametrize("watchdog", [True, False])
def test_systemd_watchdog_pings_unless_switched_off(tmp_path, watchdog):
    path = str(tmp_path / "notify.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(path)
    listener.settimeout(60)
    hub = HubProcess("echo_hub", tmp_path / "hub", module="tests.bus.echo_hub", config={"hub": {"watchdog": watchdog}},
                     env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "200000"})     # a ping every 100 ms when on
    try:
        hub.start()
        assert b"READY=1" in listener.recv(4096)
        time.sleep(0.5)                                   # five watchdog intervals
        hub.stop()
        messages = [listener.recv(4096)]
        while b"STOPPING=1" not in messages[-1]:
            messages.append(listener.recv(4096))
        assert any(b"WATCHDOG=1" in message for message in messages) is watchdog
    finally:
        hub.stop()
        listener.close()


def test_hubctl_ping_token_and_failure(echo_hub):
    """The bus's generic commands alone (no hub names: tests/ops/test_hubctl.py covers `hubctl ping memory`)."""
    ok = subprocess.run([sys.executable, "-m", "bus.cli", "ping", echo_hub.endpoint], cwd=REPO,
                        capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and "pong" in ok.stdout
    token = subprocess.run([sys.executable, "-m", "bus.cli", "token", "--data-dir", str(echo_hub.data_dir)],
                           cwd=REPO, capture_output=True, text=True, timeout=60)
    assert token.returncode == 0
    minted = token.stdout.strip().splitlines()[-1]
    with echo_hub.client(token=minted) as client:
        assert client.call("EchoAgent", "echo", {"word": "t"})["caller"] == "admin"
    call = subprocess.run([sys.executable, "-m", "bus.cli", "call", echo_hub.endpoint, "EchoAgent", "echo",
                           '{"word": "z"}', "--token", minted], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert call.returncode == 0 and json.loads(call.stdout)["word"] == "z"
    dead = subprocess.run([sys.executable, "-m", "bus.cli", "ping", "127.0.0.1:1", "--timeout", "0.5"], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert dead.returncode == 1 and "no answer" in dead.stderr


def test_events_are_published(echo_hub, tmp_path):
    # the echo hub publishes nothing by itself; a SUB can still connect and the socket is bound
    sock = zmq.Context.instance().socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(echo_hub.events_endpoint)
    sock.setsockopt(zmq.SUBSCRIBE, b"")
    assert sock.poll(300) == 0
    sock.close()
