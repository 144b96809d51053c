"""ModelManagerSuite's model facts, kept in MemoryHub (the plan's "MemoryHub stores model metadata").

What is written, as MemoryClient key/values under ``model_facts.prefix`` (default ``models:``) of MemoryHub,
so any agent reads the catalogue with ``kv_get`` / ``kv_list`` (native or ``GET /kv/models:...``):

  models:catalogue:<id>                 the registry record: id, version, path, file, sha256, size, quantization,
                                        architecture, context_length, parameter_count, valid, reason, updated_at
                                        (``removed: true`` once the file is gone)
  models:version:<id>:<version>         one per version seen: sha256, size, quantization, path, seen_at
  models:state:<id>                     the last load / unload / eviction: loaded, device, event, at, ...
  models:event:<id>:<epoch_ms>          each load / unload / eviction (kept ``event_ttl_s``, default 30 days)
  models:evaluation:<model_id>:<eval_id>   a finished or failed evaluation: status, kind, version, summary, error

How: every fact is first a row of the local SQL outbox (``model_facts_outbox``, in the suite's own database,
written on the thread that produced the fact), then a sender thread sends the rows in order with
``MemoryClient.kv_set`` to ``memory_hub_endpoint`` with a MemoryHub service token (``token`` / env
``MEMORY_HUB_TOKEN``, or ``token_file``), each with an ``idempotency_key`` so a retried row is written once.
A row is deleted only after MemoryHub acknowledged it: a MemoryHub outage (down, link cut, wrong token)
delays the facts, retried with exponential backoff, and never loses them. A row MemoryHub refuses for good
(``bad_request``, ``too_large``) is kept as ``dead`` and shown by the ``model_facts`` health check.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bus.client import HubClient
from bus.errors import HubError
from bus.periodic import PeriodicTask
from bus.log import get_logger
from bus.settings import SettingError, setting

from .sql_models import Base

log = get_logger("model_manager_suite.model_facts")



@dataclass(frozen=True)
class ModelFactsSettings:
    """Settings section ``model_facts``."""
    memory_hub_endpoint: str = ""      # e.g. tcp://192.168.100.17:7010; empty: no facts are kept nor sent
    token: str | None = None           # a MemoryHub JWT with scope MemoryClient (env MEMORY_HUB_TOKEN)
    token_file: str = ""               # or a file holding that token; neither: a 1 h token minted with the
                                       # suite's own secret (works when both hubs share HUB_JWT_SECRET)
    prefix: str = "models:"
    event_ttl_s: float = setting(30 * 86400.0, minimum=0.0)
    batch: int = setting(100, minimum=1, maximum=10000)       # rows read per pass
    timeout_s: float = setting(5.0, minimum=0.01)             # per kv_set
    backoff_initial_s: float = setting(1.0, minimum=0.01)
    backoff_max_s: float = setting(60.0, minimum=0.01)

    def __post_init__(self) -> None:
        if self.backoff_max_s < self.backoff_initial_s:
            raise SettingError("backoff_max_s", f"must be >= backoff_initial_s ({self.backoff_initial_s!r})")


PERMANENT = {"bad_request", "too_large", "unknown_action"}
LOAD_TOPICS = {"model.loaded": True, "model.unloaded": False, "model.evicted": False}

OUTBOX = sa.Table(
    "model_facts_outbox", Base.metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("key", sa.String(512), nullable=False),
    sa.Column("value", sa.JSON, nullable=False),
    sa.Column("ttl_s", sa.Float, nullable=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("state", sa.String(16), nullable=False, default="pending"),       # pending | dead
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("last_error", sa.Text, nullable=True),
    sqlite_autoincrement=True,
)


class FactsOutbox:
    """The durable queue: rows in insertion order until MemoryHub acknowledged them."""

    def __init__(self, engine: Engine, clock: Callable[[], float] = time.time):
        self.engine = engine
        self.clock = clock
        self.added = threading.Event()

    def add(self, key: str, value: Any, ttl_s: float | None = None) -> None:
        with self.engine.begin() as conn:
            conn.execute(OUTBOX.insert().values(key=key, value=value, ttl_s=ttl_s, created_at=self.clock(),
                                                state="pending", attempts=0))
        self.added.set()

    def pending(self, limit: int) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(sa.select(OUTBOX).where(OUTBOX.c.state == "pending")
                                     .order_by(OUTBOX.c.id).limit(limit)))

    def done(self, row_id: int) -> None:
        with self.engine.begin() as conn:
            conn.execute(OUTBOX.delete().where(OUTBOX.c.id == row_id))

    def failed(self, row_id: int, error: str, dead: bool) -> None:
        with self.engine.begin() as conn:
            conn.execute(OUTBOX.update().where(OUTBOX.c.id == row_id).values(
                attempts=OUTBOX.c.attempts + 1, last_error=error[:500], state="dead" if dead else "pending"))

    def counts(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(OUTBOX.c.state, sa.func.count()).group_by(OUTBOX.c.state)).all()
        found = {state: int(n) for state, n in rows}
        return {"pending": found.get("pending", 0), "dead": found.get("dead", 0)}


class ModelFacts:
    """Turns registry scans and model events into outbox rows (cheap: one SQL insert per fact)."""

    def __init__(self, outbox: FactsOutbox, registry: Any, settings: ModelFactsSettings,
                 clock: Callable[[], float] = time.time):
        self.outbox = outbox
        self.registry = registry
        self.prefix = settings.prefix
        self.event_ttl_s = settings.event_ttl_s
        self.clock = clock

    def snapshot(self) -> None:
        """The whole catalogue (at start: MemoryHub may have missed changes while the suite was down)."""
        for record in self.registry.list():
            self._record(record)

    def on_scan(self, result: Any) -> None:
        for model_id in [*result.added, *result.changed]:
            try:
                self._record(self.registry.get(model_id))
            except HubError:
                continue            # gone again since the scan
        for model_id in result.removed:
            self.outbox.add(f"{self.prefix}catalogue:{model_id}",
                            {"id": model_id, "removed": True, "updated_at": self.clock()})

    def observe(self, topic: str, fields: dict | None) -> None:
        fields = dict(fields or {})
        try:
            if topic in LOAD_TOPICS and fields.get("model_id"):
                self._load_event(topic, fields)
            elif topic == "eval.finished" and fields.get("model_id") and fields.get("eval_id"):
                self.outbox.add(f"{self.prefix}evaluation:{fields['model_id']}:{fields['eval_id']}",
                                {**_plain(fields), "at": self.clock()})
        except Exception as exc:     # an observer must not break the publisher; the log says what was lost
            log.error("model_fact_not_recorded", topic=topic, error=repr(exc))

    def _load_event(self, topic: str, fields: dict) -> None:
        model_id, now = fields["model_id"], self.clock()
        fact = {**_plain(fields), "event": topic, "loaded": LOAD_TOPICS[topic], "at": now}
        self.outbox.add(f"{self.prefix}state:{model_id}", fact)
        self.outbox.add(f"{self.prefix}event:{model_id}:{int(now * 1000):015d}", fact, self.event_ttl_s)

    def _record(self, record: Any) -> None:
        facts = record.to_dict()
        facts.pop("header", None)
        facts.update(file=Path(record.path).name if record.path else None, updated_at=self.clock())
        self.outbox.add(f"{self.prefix}catalogue:{record.id}", _plain(facts))
        if record.sha256:
            self.outbox.add(f"{self.prefix}version:{record.id}:{record.version}", {
                "id": record.id, "version": record.version, "sha256": record.sha256, "size": record.size,
                "quantization": record.quantization, "path": record.path, "seen_at": self.clock()})


class FactsSender:
    """Sends the outbox to MemoryHub in order; backs off while MemoryHub cannot take it."""

    def __init__(self, outbox: FactsOutbox, settings: ModelFactsSettings, mint: Callable[[], str] | None = None):
        self.outbox = outbox
        self.settings = settings
        self.mint = mint          # a short-lived MemoryHub token from the shared HUB_JWT_SECRET, when no token is set
        self.endpoint = settings.memory_hub_endpoint
        self.sent = 0
        self.last_error: str | None = None
        self.last_sent_at: float | None = None
        self._delay = settings.backoff_initial_s
        self._retry_at = 0.0      # time.monotonic() before which a back-off holds, even when a new fact wakes us
        # woken when a fact is added; otherwise looks every 5 s, or after the back-off while MemoryHub is away
        self._task = PeriodicTask("model-facts-sender", 5.0, self._pass, wake=outbox.added, run_sets_delay=True)

    def start(self) -> None:
        self._task.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._task.stop(timeout)

    def health(self) -> tuple[bool, dict]:
        """Ok unless rows were refused for good; pending rows only mean MemoryHub is behind."""
        counts = self.outbox.counts()
        return counts["dead"] == 0, {"endpoint": self.endpoint, **counts, "sent": self.sent,
                                     "last_sent_at": self.last_sent_at, "last_error": self.last_error}

    def token(self) -> str | None:
        try:
            configured = self.token_from(self.settings.token, self.settings.token_file)
        except OSError as exc:
            self.last_error = f"token_file: {exc}"
            return None
        return configured if configured is not None or self.mint is None else self.mint()

    @staticmethod
    def token_from(token: str | None, token_file: str | None) -> str | None:
        """``token`` (env MEMORY_HUB_TOKEN), else the content of ``token_file``; read at each pass (rotation)."""
        if token:
            return str(token)
        path = token_file
        return (Path(path).read_text().strip() or None) if path else None

    def _pass(self) -> float | None:
        """Send what is pending; the seconds until the next pass (doubling while MemoryHub cannot take it)."""
        backing_off = self._retry_at - time.monotonic()
        if backing_off > 0:               # woken by a new fact during a back-off: it waits with the others
            return backing_off
        try:
            progressed = self.send_pending()
        except Exception as exc:          # the local database: retried like an outage
            self.last_error, progressed = repr(exc), False
        if progressed is False:
            delay = self._delay
            log.warning("model_facts_delayed", endpoint=self.endpoint, error=self.last_error, retry_in_s=delay)
            self._delay = min(delay * 2, self.settings.backoff_max_s)
            self._retry_at = time.monotonic() + delay
            return delay
        self._delay = self.settings.backoff_initial_s
        return None if progressed is None else 0.0      # empty: wait for the next fact; else send the rest now

    def send_pending(self) -> bool | None:
        """One pass: None when the outbox is empty, else whether every row read was delivered."""
        rows = self.outbox.pending(self.settings.batch)
        if not rows:
            return None
        token = self.token()
        if token is None:
            self.last_error = "no MemoryHub token (model_facts.token / MEMORY_HUB_TOKEN / token_file)"
            return False
        with HubClient(self.endpoint, token=token, timeout=self.settings.timeout_s) as client:
            for row in rows:
                if self._task.stopping or not self._send(client, row):
                    return False
        return True

    def _send(self, client: HubClient, row: Any) -> bool:
        args: dict[str, Any] = {"key": row.key, "value": row.value,
                                "idempotency_key": f"model-facts:{row.id}:{row.created_at!r}"}
        if row.ttl_s:
            args["ttl"] = float(row.ttl_s)
        try:
            client.call("MemoryClient", "kv_set", args)
        except HubError as err:
            self.last_error = f"{err.code}: {err.message}"
            permanent = err.code in PERMANENT
            self.outbox.failed(row.id, self.last_error, dead=permanent)
            if permanent:
                log.error("model_fact_refused", key=row.key, error=self.last_error)
            return permanent              # a refused row is set aside; the next ones still go
        self.outbox.done(row.id)
        self.sent += 1
        self.last_sent_at = time.time()
        return True


def _plain(fields: dict) -> dict:
    """JSON-safe copy (tuples become lists, odd objects their text)."""
    out: dict[str, Any] = {}
    for key, value in fields.items():
        if isinstance(value, (str, int, float, bool)) or value is None:
            out[key] = value
        elif isinstance(value, (list, tuple)):
            out[key] = [v if isinstance(v, (str, int, float, bool, dict)) or v is None else str(v) for v in value]
        elif isinstance(value, dict):
            out[key] = _plain(value)
        else:
            out[key] = str(value)
    return out


def memory_hub_token_minter(tokens: Any) -> Callable[[], str]:
    """Service tokens for MemoryHub signed with this hub's secret, renewed when less than 10 minutes remain."""
    current: dict[str, Any] = {"token": None, "exp": 0.0}

    def mint() -> str:
        if current["token"] is None or current["exp"] - time.time() < 600:
            token, claims = tokens.mint("model-manager-suite", scopes=["MemoryClient"], ttl_s=3600,
                                        extra={"aud": ["memory_hub"]})
            current.update(token=token, exp=float(claims["exp"]))
        return current["token"]
    return mint


def start_model_facts(section: ModelFactsSettings, engine: Engine, registry: Any, events: Any,
                      mint: Callable[[], str] | None = None) -> FactsSender | None:
    """Compose and start the facts path when ``memory_hub_endpoint`` is set (after the first scan)."""
    if not section.memory_hub_endpoint:
        return None
    outbox = FactsOutbox(engine)
    facts = ModelFacts(outbox, registry, section)
    registry.add_listener(facts.on_scan)
    events.observers.append(facts.observe)
    facts.snapshot()
    sender = FactsSender(outbox, section, mint)
    sender.start()
    return sender
