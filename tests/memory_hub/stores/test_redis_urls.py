"""REDIS_URL forms beyond one local server: ``rediss://`` (TLS) and ``redis+sentinel://``.

``rediss://``: a real redis-server speaking TLS only, with a certificate of a CA made by the test; the store
verifies it against ``ssl_ca_certs``, and a store trusting another CA is refused (``RedisUnavailable``).

``redis+sentinel://``: a real master, replica and sentinel; the master is killed during writes.

* ``RedisStore`` level: every write acknowledged as replicated (``WAIT 1``) before the kill is on the
  promoted replica, writes during the fail-over fail as ``RedisUnavailable`` (retryable), never silently,
  and the same store (no rebuild) writes to the new master afterwards.
* MemoryClient level (SQL + its Redis copy): every acknowledged ``kv_set`` reads back after the fail-over.
"""
from __future__ import annotations

import shutil
import subprocess
import threading
from concurrent.futures import Future
import time
from pathlib import Path

import pytest

from agents.memory_hub.handlers.memory_client import MemoryClient
from agents.memory_hub.stores.redis_store import RedisStore, RedisUnavailable, parse_sentinel_url, redis_errors
from bus.deferred import Deferred
from bus.errors import HubError
from bus.handler import CallContext
from tests.support.postgres import free_port
from tests.support.redis_sentinel import SentinelTrio

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


@pytest.fixture
def trio(tmp_path):
    with SentinelTrio(tmp_path / "redis") as running:
        yield running


def test_sentinel_url_forms():
    assert parse_sentinel_url("redis+sentinel://:pw@a:1,b/svc?sentinel_password=s") == {
        "sentinels": [("a", 1), ("b", 26379)], "service": "svc", "password": "pw", "sentinel_password": "s",
        "ssl": False, "options": {}}
    assert parse_sentinel_url("rediss+sentinel://a/svc?ssl_ca_certs=/ca.pem")["ssl"] is True
    with pytest.raises(ValueError):
        parse_sentinel_url("redis+sentinel://a:26379/")


def _kv_set(mc: MemoryClient, key: str, value: int) -> None:
    spec, fn = mc.action_table()["kv_set"]
    fn(spec.schema.validate({"key": key, "value": value}), CallContext(agent=mc.name, action="kv_set"))


def _kv_get(mc: MemoryClient, key: str):
    spec, fn = mc.action_table()["kv_get"]
    result = fn(spec.schema.validate({"key": key}), CallContext(agent=mc.name, action="kv_get"))
    if isinstance(result, (Future, Deferred)):   # kv_get may answer later (the hub's loop reads Redis)
        result = result.result(timeout=30)
    return result["value"]


def test_fail_over_during_writes_loses_nothing_acknowledged(trio, compose_hub, sqlite_store):
    store = RedisStore(trio.url)
    mc = compose_hub(sqlite_store, store).handler(MemoryClient)
    replicated: list[str] = []
    written: list[str] = []
    acked_kv: list[tuple[str, int]] = []
    refused = 0
    stop = threading.Event()

    def writer() -> None:
        nonlocal refused
        i = 0
        while not stop.is_set():
            i += 1
            try:
                store.cache.set(f"w{i}", str(i))
                written.append(f"w{i}")
                with redis_errors():
                    with_replica = store.client("cache").wait(1, 200)
                if with_replica >= 1:
                    replicated.append(f"w{i}")
            except RedisUnavailable:
                refused += 1
                time.sleep(0.05)
            try:
                _kv_set(mc, f"kv{i}", i)
                acked_kv.append((f"kv{i}", i))
            except HubError:
                pass

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while len(replicated) < 50 and time.monotonic() < deadline:
            time.sleep(0.05)
        trio.kill_master()
        trio.wait_for_failover()
        after = len(written)
        deadline = time.monotonic() + 30
        while len(written) < after + 50 and time.monotonic() < deadline:      # writes resumed on the new master
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(30)
    assert len(written) >= after + 50, "writes did not resume on the promoted replica"
    promoted = trio.client("replica")
    assert replicated and [k for k in replicated if promoted.get(f"cache:{k}") is None] == []
    assert [k for k in written[after:] if promoted.get(f"cache:{k}") is None] == []
    assert store.health()[1]["master"] == f"127.0.0.1:{trio.ports['replica']}"
    lost = [(k, v) for k, v in acked_kv if _kv_get(mc, k) != v]
    assert acked_kv and lost == []
    print(f"fail-over: {len(replicated)} replicated writes kept, {refused} refused while no master, "
          f"{len(written) - after} written to the new master, "
          f"{len(acked_kv)} kv_set acknowledged, none lost")
    store.close()


def _certificates(directory: Path, name: str) -> dict[str, Path]:
    """A CA and a server certificate for 127.0.0.1 signed by it (openssl)."""
    directory.mkdir(parents=True, exist_ok=True)
    files = {k: directory / f"{name}-{k}.pem" for k in ("ca", "ca-key", "cert", "key", "csr")}

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", f"/CN={name} test CA",
        "-keyout", str(files["ca-key"]), "-out", str(files["ca"]))
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", str(files["key"]),
        "-out", str(files["csr"]))
    ext = directory / f"{name}-ext.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1\n")
    run("x509", "-req", "-in", str(files["csr"]), "-CA", str(files["ca"]), "-CAkey", str(files["ca-key"]),
        "-CAcreateserial", "-days", "1", "-extfile", str(ext), "-out", str(files["cert"]))
    return files


@pytest.fixture
def tls_redis(tmp_path):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed (needed to make the test certificates)")
    certs = _certificates(tmp_path / "tls", "server")
    port = free_port()
    proc = subprocess.Popen(["redis-server", "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
                             "--tls-cert-file", str(certs["cert"]), "--tls-key-file", str(certs["key"]),
                             "--tls-ca-cert-file", str(certs["ca"]), "--tls-auth-clients", "no",
                             "--save", "", "--appendonly", "no", "--dir", str(tmp_path / "tls")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 15
        probe = RedisStore(f"rediss://127.0.0.1:{port}?ssl_ca_certs={certs['ca']}")
        while not probe.available():
            assert proc.poll() is None and time.monotonic() < deadline, "TLS redis-server did not start"
            time.sleep(0.1)
        probe.close()
        yield port, certs["ca"]
    finally:
        proc.terminate()
        proc.wait(10)


def test_rediss_url_verifies_the_server_certificate(tls_redis, tmp_path):
    port, ca = tls_redis
    store = RedisStore(f"rediss://127.0.0.1:{port}?ssl_ca_certs={ca}")
    store.cache.set("tls", "yes")
    assert store.cache.get("tls") == b"yes" and store.health()[0]
    store.close()
    stranger = _certificates(tmp_path / "other", "other")["ca"]
    untrusting = RedisStore(f"rediss://127.0.0.1:{port}?ssl_ca_certs={stranger}")
    with pytest.raises(RedisUnavailable):
        untrusting.cache.get("tls")
    untrusting.close()
    plain = RedisStore(f"redis://127.0.0.1:{port}")          # TLS port, plain client: refused, not hung
    with pytest.raises(RedisUnavailable):
        plain.cache.get("tls")
    plain.close()
