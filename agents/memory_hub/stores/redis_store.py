"""Redis hot tier: one client per logical database, every key under a namespace prefix.

Logical databases: db0 ``cache`` (CacheManager, MOS ``mem:`` entries), db1 ``sessions``, db2 ``knowledge``,
db3 ``auth`` (revoked JWT ids, AgentTrustScorer cache). Namespaces (``RedisNamespace``) always add their
prefix: ``cache:``, ``mem:``, ``kv:`` and ``ctx:`` in db0, ``session:`` in db1, ``kb:`` in db2, ``auth:`` and
``trust:`` in db3.

Failure behaviour: a call that cannot connect (or loses its connection) is retried by redis-py (``Retry``,
exponential backoff with jitter, 2 retries, cap 0.2 s); a read timeout is not retried (the command may have
run). Timeouts are short (connect 0.25 s, read 0.5 s), so a down or stalled Redis turns into
``RedisUnavailable`` (a ``bus.errors.Unavailable``, message "Redis is not available", wire code
``unavailable``, retryable) within about a second instead of hanging. Pooled connections reconnect by themselves
when Redis comes back; the store never needs rebuilding.

URLs (``REDIS_URL``; a database number in the URL is ignored: the logical map above decides):

* ``redis://[:password@]host:port`` -- one server; ``unix:///path/redis.sock`` or a bare socket path.
* ``rediss://[:password@]host:port?ssl_ca_certs=/etc/ssl/redis-ca.pem`` -- TLS (certificates verified
  against that CA; ``ssl_certfile``/``ssl_keyfile`` add a client certificate, ``ssl_cert_reqs=none`` turns
  verification off).
* ``redis+sentinel://[:password@]host:26379[,host2:26379...]/mymaster[?sentinel_password=...]`` -- the
  master of service ``mymaster`` as Redis Sentinel names it; after a fail-over the next connection
  asks the sentinels again (a demoted master's READONLY reply counts as a lost connection and is
  retried), so the hub follows the new master by itself. ``rediss+sentinel://`` speaks TLS to the data
  nodes (the same ``ssl_*`` query arguments apply); ``password`` is the data nodes' password.
"""
from __future__ import annotations

import contextlib
import json
import logging
import threading
from dataclasses import dataclass
from typing import Any, TypeVar
from collections.abc import Callable, Iterable, Iterator, Mapping
from urllib.parse import parse_qsl, unquote, urlsplit

import redis
from redis.backoff import EqualJitterBackoff
from redis.connection import parse_url
from redis.retry import Retry
from redis.sentinel import Sentinel, SentinelConnectionPool

from bus.errors import Unavailable
from bus.settings import setting

try:                                    # redis-py >= 6
    from redis.backoff import ExponentialWithJitterBackoff as _JitterBackoff
except ImportError:                     # redis-py 5: exponential growth with equal jitter
    _JitterBackoff = None

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class RedisSettings:
    """The ``redis`` section: client timeouts, retries and pools."""

    connect_timeout_s: float = setting(0.25, minimum=0.001, maximum=60.0)
    socket_timeout_s: float = setting(0.5, minimum=0.001, maximum=600.0)
    retries: int = setting(2, minimum=0, maximum=100, doc="retries after the first attempt")
    backoff_base_s: float = setting(0.02, minimum=0.0, maximum=60.0)
    backoff_cap_s: float = setting(0.2, minimum=0.0, maximum=600.0)
    max_connections: int = setting(64, minimum=1, maximum=100000, doc="per logical database")
    health_check_interval_s: int = setting(15, minimum=0, maximum=86400)


LOGICAL_DBS: dict[str, int] = {"cache": 0, "sessions": 1, "knowledge": 2, "auth": 3}
NAMESPACES: dict[str, str] = {          # namespace -> logical db
    "cache": "cache", "mem": "cache", "kv": "cache", "ctx": "cache", "session": "sessions", "kb": "knowledge",
    "auth": "auth",
    "trust": "auth",
}
# down, unreachable, stalled, or not speaking RESP (e.g. a proxy answering HTTP)
UNAVAILABLE_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError,
                      redis.exceptions.InvalidResponse, OSError)
UNWRITABLE_REPLIES = ("MISCONF", "OOM", "READONLY", "MASTERDOWN", "NOREPLICAS")
# Retried: failures to connect or a dropped connection. Not retried: read timeouts, because the command
# may have run (a second INCR would count twice); a stalled Redis fails after one socket timeout.
RETRIED_ERRORS = (redis.exceptions.ConnectionError,)


class RedisUnavailable(Unavailable):
    """Redis is down or unreachable (wire code ``unavailable``, retryable)."""

    def __init__(self, message: str = "Redis is not available", **kwargs: Any) -> None:
        super().__init__(message, **kwargs)


@contextlib.contextmanager
def redis_errors() -> Iterator[None]:
    """Turn connection/timeout failures into ``RedisUnavailable``; other Redis errors pass through."""
    try:
        yield
    except UNAVAILABLE_ERRORS as exc:
        log.warning("redis unavailable: %s", exc)
        raise RedisUnavailable() from exc
    except redis.exceptions.ResponseError as exc:
        # a server that cannot take writes (disk full, out of memory, a replica) is unavailable, not a bug
        if str(exc).startswith(UNWRITABLE_REPLIES):
            log.warning("redis refuses writes: %s", exc)
            raise RedisUnavailable() from exc
        raise


SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
SENTINEL_PORT = 26379


def normalize_url(url: str) -> str:
    if url.startswith("/"):
        return f"unix://{url}"
    return url


def parse_sentinel_url(url: str) -> dict[str, Any]:
    """``{sentinels: [(host, port)], service, password, sentinel_password, ssl, options}`` of a sentinel URL."""
    parts = urlsplit(url)
    userinfo, _, hosts = parts.netloc.rpartition("@")
    service = unquote(parts.path.strip("/").split("/")[0])
    sentinels = []
    for host in filter(None, hosts.split(",")):
        name, _, port = host.rpartition(":") if ":" in host else (host, "", "")
        sentinels.append((name, int(port) if port else SENTINEL_PORT))
    if not sentinels or not service:
        raise ValueError("a sentinel URL needs hosts and a service name: redis+sentinel://host:26379/mymaster")
    options = dict(parse_qsl(parts.query))
    return {"sentinels": sentinels, "service": service, "password": unquote(userinfo.partition(":")[2]) or None,
            "sentinel_password": options.pop("sentinel_password", None),
            "ssl": parts.scheme == "rediss+sentinel", "options": options}


class RedisNamespace:
    """Keys of one namespace in one logical database; every method adds ``prefix`` to the key given."""

    def __init__(self, name: str, client: redis.Redis,
                 on_restart: Callable[[Callable[[], None]], None] | None = None) -> None:
        self.name = name
        self.prefix = f"{name}:"
        self.client = client
        self._on_restart = on_restart

    def on_restart(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` when the server turns out to have restarted (see ``RedisStore``)."""
        if self._on_restart is not None:
            self._on_restart(listener)

    def key(self, key: str) -> str:
        return self.prefix + key

    def strip(self, full_key: str | bytes) -> str:
        text = full_key.decode() if isinstance(full_key, bytes) else full_key
        return text[len(self.prefix):] if text.startswith(self.prefix) else text

    def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        with redis_errors():
            return fn(*args, **kwargs)

    # ------------------------------------------------------------------ strings
    def get(self, key: str) -> bytes | None:
        return self._call(self.client.get, self.key(key))

    def set(self, key: str, value: bytes | str | int | float, ttl: float | None = None, *,
            nx: bool = False) -> bool:
        """Store ``value``; ``ttl`` in seconds (fractions allowed); ``nx``: only if absent. True if stored."""
        px = _ttl_ms(ttl)
        return bool(self._call(self.client.set, self.key(key), value, px=px, nx=nx))

    def get_json(self, key: str, default: Any = None) -> Any:
        raw = self.get(key)
        if raw is None:
            return default
        try:
            return json.loads(raw)
        except ValueError:
            return raw.decode("utf-8", "replace")

    def set_json(self, key: str, value: Any, ttl: float | None = None, *, nx: bool = False) -> bool:
        return self.set(key, json.dumps(value, separators=(",", ":"), default=str), ttl, nx=nx)

    def get_many(self, keys: Iterable[str]) -> list[bytes | None]:
        keys = [self.key(k) for k in keys]
        return self._call(self.client.mget, keys) if keys else []

    def delete(self, *keys: str) -> int:
        return int(self._call(self.client.delete, *[self.key(k) for k in keys])) if keys else 0

    def exists(self, key: str) -> bool:
        return bool(self._call(self.client.exists, self.key(key)))

    def ttl(self, key: str) -> float | None:
        """Seconds left; None when the key is missing or has no expiry."""
        ms = self._call(self.client.pttl, self.key(key))
        return None if ms is None or ms < 0 else ms / 1000.0

    def expire(self, key: str, ttl: float) -> bool:
        return bool(self._call(self.client.pexpire, self.key(key), _ttl_ms(ttl)))

    def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        """Atomic increment; ``ttl`` (if given) is set when the key is created by this call."""
        full = self.key(key)
        with redis_errors():
            value = int(self.client.incrby(full, amount))
            if ttl is not None and value == amount:
                self.client.pexpire(full, _ttl_ms(ttl))
        return value

    # ------------------------------------------------------------------ hashes and sets
    def hset(self, key: str, mapping: Mapping[str, Any]) -> int:
        return int(self._call(self.client.hset, self.key(key), mapping=dict(mapping))) if mapping else 0

    def hgetall(self, key: str) -> dict[str, bytes]:
        raw = self._call(self.client.hgetall, self.key(key))
        return {(k.decode() if isinstance(k, bytes) else k): v for k, v in raw.items()}

    def hdel(self, key: str, *fields: str) -> int:
        return int(self._call(self.client.hdel, self.key(key), *fields)) if fields else 0

    def sadd(self, key: str, *members: bytes | str) -> int:
        return int(self._call(self.client.sadd, self.key(key), *members)) if members else 0

    def smembers(self, key: str) -> set[bytes]:
        return set(self._call(self.client.smembers, self.key(key)))

    def srem(self, key: str, *members: bytes | str) -> int:
        return int(self._call(self.client.srem, self.key(key), *members)) if members else 0

    # ------------------------------------------------------------------ iteration
    def scan(self, pattern: str = "*", count: int = 500) -> list[str]:
        """Keys (without prefix) matching ``pattern`` inside this namespace."""
        with redis_errors():
            return [self.strip(k) for k in self.client.scan_iter(match=self.key(pattern), count=count)]

    def delete_matching(self, pattern: str = "*", batch: int = 500) -> int:
        """Delete every key of this namespace matching ``pattern``; returns how many were deleted."""
        deleted = 0
        with redis_errors():
            chunk: list[bytes] = []
            for full in self.client.scan_iter(match=self.key(pattern), count=batch):
                chunk.append(full)
                if len(chunk) >= batch:
                    deleted += int(self.client.delete(*chunk))
                    chunk = []
            if chunk:
                deleted += int(self.client.delete(*chunk))
        return deleted

    def pipeline(self, transaction: bool = True) -> Any:
        """A raw redis-py pipeline on this database: use ``ns.key(...)`` for keys and run
        ``execute()`` inside ``with redis_errors():``."""
        return self.client.pipeline(transaction=transaction)


class RedisStore:
    """Connection pools to one Redis server, one ``redis.Redis`` client per logical database.

    Restarts: every new connection reads the server's ``run_id``; a new one means the server restarted
    (and may have reloaded older data from its append-only file), and the ``on_restart`` listeners are
    called before that connection runs its first command (caches of SQL rows mark themselves dirty).
    """

    def __init__(self, url: str, *, settings: RedisSettings | None = None) -> None:
        self.url = normalize_url(url)
        self.settings = settings or RedisSettings()
        self._run_id: bytes | None = None
        self._restart_listeners: list[Callable[[], None]] = []
        self._run_id_lock = threading.Lock()
        self.sentinel = self._sentinel() if self.url.split("://", 1)[0] in SENTINEL_SCHEMES else None
        self._clients = {name: redis.Redis(connection_pool=self._pool(db)) for name, db in LOGICAL_DBS.items()}
        self._namespaces = {ns: RedisNamespace(ns, self._clients[db], self.on_restart)
                            for ns, db in NAMESPACES.items()}

    def on_restart(self, listener: Callable[[], None]) -> None:
        self._restart_listeners.append(listener)

    def _on_connect(self, conn: redis.connection.AbstractConnection) -> None:
        # as redis-py's own connect does: no health-check PING inside the handshake (a failing one reconnects,
        # which runs this again, without end, e.g. plain text sent to a TLS port)
        handshake = getattr(conn, "on_connect_check_health", None)
        if handshake is not None:
            handshake(check_health=False)
        else:
            conn.on_connect()
        conn.send_command("INFO", "server", check_health=False)
        info = conn.read_response()
        text = info.decode("utf-8", "replace") if isinstance(info, bytes) else str(info)
        run_id = next((line.split(":", 1)[1].strip().encode() for line in text.splitlines()
                       if line.startswith("run_id:")), None)
        with self._run_id_lock:
            restarted = self._run_id is not None and run_id != self._run_id
            if restarted:
                log.warning("redis restarted (run_id changed): caches of SQL rows are disowned")
                for listener in list(self._restart_listeners):
                    listener()
            self._run_id = run_id

    def _pool(self, db: int) -> redis.ConnectionPool:
        s = self.settings
        common = dict(
            db=db,
            socket_connect_timeout=s.connect_timeout_s,
            socket_timeout=s.socket_timeout_s,
            retry=Retry(_backoff(s.backoff_cap_s, s.backoff_base_s), s.retries,
                        supported_errors=RETRIED_ERRORS),
            health_check_interval=s.health_check_interval_s,
            max_connections=s.max_connections,
            redis_connect_func=self._on_connect,
        )
        if self.sentinel is not None:
            target = parse_sentinel_url(self.url)
            return SentinelConnectionPool(target["service"], self.sentinel, password=target["password"],
                                          ssl=target["ssl"], socket_keepalive=True, **target["options"], **common)
        options = {**parse_url(self.url), **common}
        if options.get("connection_class") is not redis.UnixDomainSocketConnection:
            options["socket_keepalive"] = True
        return redis.ConnectionPool(**options)

    def _sentinel(self) -> Sentinel:
        target = parse_sentinel_url(self.url)
        timeouts = {"socket_connect_timeout": self.settings.connect_timeout_s,
                    "socket_timeout": self.settings.socket_timeout_s}
        return Sentinel(target["sentinels"], sentinel_kwargs={**timeouts, "password": target["sentinel_password"]},
                        **timeouts)

    def master_address(self) -> str | None:
        """``host:port`` of the current master (sentinel URLs; None otherwise or when no sentinel answers)."""
        if self.sentinel is None:
            return None
        try:
            host, port = self.sentinel.discover_master(parse_sentinel_url(self.url)["service"])
        except (*UNAVAILABLE_ERRORS, redis.exceptions.RedisError):
            return None
        return f"{host}:{port}"

    # ------------------------------------------------------------------ access
    def client(self, db: str | int) -> redis.Redis:
        """The raw client of a logical database (``"cache"`` or ``0``, ...). Raw calls are not mapped:
        wrap them in ``with redis_errors():``."""
        if isinstance(db, int):
            names = [name for name, number in LOGICAL_DBS.items() if number == db]
            if not names:
                raise KeyError(f"no logical redis database {db}")
            db = names[0]
        return self._clients[db]

    def ns(self, name: str) -> RedisNamespace:
        return self._namespaces[name]

    def key(self, namespace: str, key: str) -> str:
        return self._namespaces[namespace].key(key)

    cache = property(lambda self: self._namespaces["cache"])
    mem = property(lambda self: self._namespaces["mem"])
    session = property(lambda self: self._namespaces["session"])
    kb = property(lambda self: self._namespaces["kb"])
    auth = property(lambda self: self._namespaces["auth"])
    trust = property(lambda self: self._namespaces["trust"])

    # ------------------------------------------------------------------ health
    def available(self) -> bool:
        """True when Redis answers PING now (never raises)."""
        try:
            return bool(self._clients["cache"].ping())
        except (*UNAVAILABLE_ERRORS, redis.exceptions.RedisError) as exc:
            log.debug("redis ping failed: %s", exc)
            return False

    def info(self) -> dict[str, Any]:
        """Server facts for health replies (CacheManager's ``redis_info``); raises ``RedisUnavailable``."""
        with redis_errors():
            raw = self._clients["cache"].info()
        return {"memory_used": raw.get("used_memory_human"), "clients_connected": raw.get("connected_clients"),
                "uptime": raw.get("uptime_in_seconds"), "version": raw.get("redis_version")}

    def health(self) -> tuple[bool, dict[str, Any]]:
        ok = self.available()
        detail = {"connected": ok, "url": _redact(self.url)}
        if self.sentinel is not None:
            detail["master"] = self.master_address()
        return ok, detail

    def close(self) -> None:
        for client in self._clients.values():
            client.connection_pool.disconnect()


def _backoff(cap: float, base: float) -> Any:
    if _JitterBackoff is not None:
        return _JitterBackoff(cap=cap, base=base)
    return EqualJitterBackoff(cap=cap, base=base)


def _ttl_ms(ttl: float | None) -> int | None:
    if ttl is None:
        return None
    return max(1, int(round(float(ttl) * 1000)))


def _redact(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url
