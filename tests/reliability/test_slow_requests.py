"""A real MemoryHub action made slow (another process holds SQLite's write lock), then:

* a deadline (``deadline_ms``, or the hub's default deadline on a legacy port) passes first: the caller gets
  ``timeout`` (legacy: ``{"status":"error","error":"Request timed out"}``), the hub keeps serving, and the
  result that arrives later is counted and dropped;
* the client disconnects mid-request (DEALER and legacy REQ): the hub keeps serving, the late reply goes
  nowhere (a fresh client receives only its own reply), ``hub_in_flight_requests`` returns to 0;
* a burst beyond ``hub.queue_limit``: every request is answered exactly once, the overflow with ``busy`` and
  ``retry_after_ms`` (legacy: "Hub busy, retry later"), and retrying after that delay succeeds.
"""
from __future__ import annotations

import time

import msgpack
import pytest
import zmq

from bus.errors import Timeout
from tests.reliability.support import DB_NAME, LegacyReq, SqlWriteLock, metric, wait_for
from tests.support.hubproc import HubProcess

WORKERS, QUEUE_LIMIT = 2, 8
CONFIG = {"hub": {"workers": WORKERS, "queue_limit": QUEUE_LIMIT, "default_deadline_ms": 1500},
          "sql": {"busy_timeout_ms": 60000}}
ADD = ("MemoryOrchestratorService", "add_memory")
pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    with HubProcess("memory_hub", tmp_path_factory.mktemp("slow") / "hub", config=CONFIG) as running:
        yield running


@pytest.fixture
def write_lock(hub):
    lock = SqlWriteLock(hub.data_dir / DB_NAME)
    yield lock
    lock.release()
    assert wait_for(lambda: metric(hub, "hub_in_flight_requests") == 0 and metric(hub, "hub_queue_depth") == 0,
                    timeout=60)


def dealer(hub: HubProcess) -> zmq.Socket:
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(hub.endpoint)
    return sock


def send_native(sock: zmq.Socket, hub: HubProcess, request_id: object, agent: str, action: str, args: dict,
                **extra: object) -> None:
    payload = {"v": 1, "id": request_id, "agent": agent, "action": action, "args": args, "token": hub.token(),
               **extra}
    sock.send_multipart([b"", msgpack.packb(payload, use_bin_type=True)])


def receive_all(sock: zmq.Socket, count: int, timeout: float) -> list[dict]:
    replies: list[dict] = []
    until = time.monotonic() + timeout
    while len(replies) < count and sock.poll(max(1, int((until - time.monotonic()) * 1000)), zmq.POLLIN):
        replies.append(msgpack.unpackb(sock.recv_multipart()[-1], raw=False))
    return replies


def test_deadline_passes_while_a_real_write_waits(hub, write_lock):
    client = hub.client()
    before = client.call(*ADD, {"content": "written before the lock"})["memory_id"]
    late_before = metric(hub, "hub_late_results_total")
    write_lock.acquire()
    with pytest.raises(Timeout) as err:
        client.call(*ADD, {"content": "slow write"}, deadline_ms=300)
    assert err.value.retryable
    assert client.call("hub", "ping")["pong"] is True                         # the loop keeps serving
    assert client.call("MemoryOrchestratorService", "get_memory", {"memory_id": before, "touch": False})[
        "memory_id"] == before
    legacy = hub.legacy_request(7140, {"action": "add_memory", "data": {"content": "slow legacy write"}})
    assert legacy == {"status": "error", "error": "Request timed out"}        # hub.default_deadline_ms
    write_lock.release()
    assert wait_for(lambda: metric(hub, "hub_late_results_total") >= late_before + 2, timeout=30)
    assert metric(hub, "hub_requests_total", agent=ADD[0], action=ADD[1], outcome="timeout") >= 1
    assert client.call(*ADD, {"content": "after the lock"})["memory_id"]
    client.close()


def test_client_gone_mid_request_leaves_nothing_behind(hub, write_lock):
    write_lock.acquire()
    gone = dealer(hub)
    send_native(gone, hub, "gone-1", *ADD, {"content": "caller hangs up"}, deadline_ms=60000)
    assert wait_for(lambda: metric(hub, "hub_in_flight_requests") >= 1, timeout=10)
    legacy = zmq.Context.instance().socket(zmq.REQ)
    legacy.setsockopt(zmq.LINGER, 0)
    legacy.connect(f"tcp://127.0.0.1:{hub.port(7140)}")
    legacy.send_json({"action": "add_memory", "data": {"content": "legacy caller hangs up"}})
    assert legacy.poll(300, zmq.POLLIN) == 0                    # still waiting for the write lock
    gone.close(linger=0)
    legacy.close(linger=0)
    with hub.client() as client:
        assert client.call("hub", "ping")["pong"] is True
    write_lock.release()
    assert wait_for(lambda: metric(hub, "hub_in_flight_requests") == 0, timeout=30)
    fresh = dealer(hub)
    try:
        send_native(fresh, hub, "fresh-1", "hub", "ping", {})
        replies = receive_all(fresh, 2, timeout=1.0)         # one reply, and not the dead client's
        assert [r["id"] for r in replies] == ["fresh-1"]
    finally:
        fresh.close(linger=0)
    assert hub.proc.poll() is None


def test_burst_beyond_the_queue_limit_is_answered_busy_never_dropped(hub, write_lock):
    busy_before = metric(hub, "hub_requests_total", outcome="busy")
    sock = dealer(hub)
    legacy = [LegacyReq(hub, 7140, timeout=20) for _ in range(4)]
    try:
        write_lock.acquire()
        total = 3 * QUEUE_LIMIT
        for i in range(total):
            send_native(sock, hub, f"burst-{i}", *ADD, {"content": f"burst {i}"}, deadline_ms=60000)
        busy = receive_all(sock, total - QUEUE_LIMIT, timeout=20)          # the overflow is answered at once
        legacy_replies = [client.request({"action": "add_memory", "data": {"content": "legacy burst"}})
                          for client in legacy]
        assert legacy_replies == [{"status": "error", "error": "Hub busy, retry later"}] * len(legacy)
        write_lock.release()
        done = receive_all(sock, QUEUE_LIMIT, timeout=60)
        assert not receive_all(sock, 1, timeout=0.5)                      # nothing answered twice
        replies = busy + done
        assert sorted(r["id"] for r in replies) == sorted(f"burst-{i}" for i in range(total))
        refused = [r for r in replies if not r["ok"]]
        assert len(refused) == total - QUEUE_LIMIT
        for reply in refused:
            assert reply["error"]["code"] == "busy" and reply["error"]["retryable"] is True
            assert reply["error"]["retry_after_ms"] > 0
        assert all(r["result"]["memory_id"] for r in replies if r["ok"])
        assert metric(hub, "hub_requests_total", outcome="busy") >= busy_before + len(refused) + len(legacy)
        retried = retry_busy(hub, sock, refused)
        assert all(r["ok"] for r in retried) and len(retried) == len(refused)
    finally:
        sock.close(linger=0)
        for client in legacy:
            client.close()


def retry_busy(hub: HubProcess, sock: zmq.Socket, refused: list[dict]) -> list[dict]:
    """Retry each refused request after its retry_after_ms, as a well-behaved client does."""
    results = []
    for reply in refused:
        for attempt in range(50):
            time.sleep(reply["error"]["retry_after_ms"] / 1000)
            request_id = f"{reply['id']}-retry-{attempt}"
            send_native(sock, hub, request_id, *ADD, {"content": f"retried {reply['id']}"})
            answer = receive_all(sock, 1, timeout=30)[0]
            assert answer["id"] == request_id
            if answer["ok"] or answer["error"]["code"] != "busy":
                results.append(answer)
                break
            reply = answer
    return results
