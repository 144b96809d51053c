"""Socket-level security of a running MemoryHub: the legacy peer allow-list (ZAP) and CURVE on the native port."""
from __future__ import annotations

import json
import urllib.request

import pytest
import zmq

from bus.client import HubClient
from bus.errors import Timeout
from tests.support.hubproc import HubProcess

pytestmark = pytest.mark.slow     # three hub processes and deliberate no-reply waits


def metrics(hub) -> str:
    with urllib.request.urlopen(hub.http_url + "/metrics", timeout=10) as resp:
        return resp.read().decode()


def raw_legacy(hub, port: int, request: dict, timeout_ms: int) -> dict | None:
    """A legacy REQ client; None when no reply came within ``timeout_ms``."""
    sock = zmq.Context.instance().socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(f"tcp://127.0.0.1:{hub.port(port)}")
    try:
        sock.send_json(request)
        if not sock.poll(timeout_ms, zmq.POLLIN):
            return None
        return json.loads(sock.recv())
    finally:
        sock.close()


# ------------------------------------------------------------------------------------------- allow-list

@pytest.fixture(scope="module")
def fenced_hub(tmp_path_factory):
    config = {"legacy": {"allow": ["10.9.9.9"]}}
    with HubProcess("memory_hub", tmp_path_factory.mktemp("fenced"), config=config) as hub:
        yield hub


def test_legacy_allow_list_refuses_other_peers(fenced_hub):
    assert raw_legacy(fenced_hub, 7116, {"action": "health_check"}, 2000) is None
    assert raw_legacy(fenced_hub, 8118, {"action": "health_check"}, 2000) is None       # health ports too
    text = metrics(fenced_hub)
    lines = [line for line in text.splitlines() if line.startswith('hub_refused_peers_total{address="127.0.0.1"}')]
    assert lines and float(lines[0].split()[-1]) >= 2


def test_native_port_is_not_fenced_by_the_legacy_allow_list(fenced_hub):
    with fenced_hub.client() as client:
        assert client.call("AgentTrustScorer", "get_trust_score", {"model_id": "x"})["trust_score"] == 0.5


def test_without_allow_list_legacy_peers_are_served(tmp_path):
    with HubProcess("memory_hub", tmp_path / "open") as hub:
        assert raw_legacy(hub, 7116, {"action": "health_check"}, 10000)["agent_type"] == "authentication"
        assert 'hub_refused_peers_total{address="127.0.0.1"}' not in metrics(hub)


# ------------------------------------------------------------------------------------------- CURVE

class CurveHub(HubProcess):
    """A hub whose native port needs CURVE: readiness and clients use the server's public key."""

    def __init__(self, *args, server_public: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.server_public = server_public

    def wait_ready(self) -> None:
        import time

        until = time.monotonic() + self.startup_timeout
        while time.monotonic() < until:
            if self.proc and self.proc.poll() is not None:
                raise RuntimeError(f"hub exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with HubClient(self.endpoint, timeout=0.5, curve_server_key=self.server_public) as client:
                    client.call("hub", "ping")
                return
            except Exception:
                time.sleep(0.1)
        raise RuntimeError(f"hub did not answer over CURVE:\n{self.log_tail()}")

    def client(self, *, token: str | None = "admin", encoding: str = "msgpack", timeout: float = 30.0) -> HubClient:
        return HubClient(self.endpoint, token=self.token() if token == "admin" else token, timeout=timeout,
                         encoding=encoding, curve_server_key=self.server_public)


@pytest.fixture(scope="module")
def curve_hub(tmp_path_factory):
    public, secret = zmq.curve_keypair()
    config = {"curve": {"enabled": True, "server_public_key": public.decode(), "server_secret_key": secret.decode()}}
    with CurveHub("memory_hub", tmp_path_factory.mktemp("curve"), config=config,
                  server_public=public.decode()) as hub:
        yield hub


def test_curve_client_is_served(curve_hub):
    with curve_hub.client() as client:
        assert client.call("AgentTrustScorer", "get_trust_score", {"model_id": "curve"})["trust_score"] == 0.5
        assert client.call("hub", "ping") is not None


def test_plain_client_gets_nothing_from_a_curve_port(curve_hub):
    with HubClient(curve_hub.endpoint, token=curve_hub.token(), timeout=2.0) as plain, pytest.raises(Timeout):
        plain.call("hub", "ping")


def test_wrong_server_key_gets_nothing(curve_hub):
    other_public, _ = zmq.curve_keypair()
    with HubClient(curve_hub.endpoint, token=curve_hub.token(), timeout=2.0,
                   curve_server_key=other_public.decode()) as client, pytest.raises(Timeout):
        client.call("hub", "ping")


def test_legacy_ports_stay_plain_json_with_curve_on(curve_hub):
    reply = raw_legacy(curve_hub, 7119, {"action": "health_check"}, 10000)
    assert reply["service"] == "ProactiveContextMonitor"
