"""SessionMemoryAgent's domain: sessions in SQL (``sessions``) with a copy in Redis db1 (``session:{id}``) that
reads are served from while it is current (``hot_cache.HotCache``; every write invalidates it).

A session is also a memory (``memory_id == session_id``, type ``session``), as the legacy agent intended
(it deleted a session with ``delete_memory(session_id)`` and marked expiry in that memory's metadata);
interactions are its children: memories of type ``interaction``, tier short, importance 0.5, metadata
``{..., role, timestamp}``, tags ``[role.lower()]``, ``parent_id`` and ``session_id`` = the session.

* ``create`` publishes ``session.created`` ``{session_id, user_id, session_type}``.
* ``add_interaction`` to an unknown session creates it (user ``default``) when ``auto_create`` is on.
* The expiry task (``expire_once``, every ``cleanup_interval_s``) marks sessions idle for more than
  ``session_timeout_s``: ``expired``/``expired_at`` columns, ``{"expired": true, "expired_at": iso}`` merged
  into the session's and its memory's metadata, Redis copy dropped, ``session.expired`` published
  ``{session_id, user_id, expired_at}``. Expired sessions keep their interactions and still accept more.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from agents.memory_hub.memories import Memories
from agents.memory_hub.hot_cache import HotCache
from agents.memory_hub.memory_records import check_content, check_json_object, check_name, stamp
from agents.memory_hub.stores.sql_models import Memory, Session, new_session_id
from bus.errors import BadRequest, Conflict, NotFound
from bus.periodic import PeriodicTask
from bus.settings import setting

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class SessionSettings:
    """The ``session_memory`` section."""

    session_timeout_s: float = setting(3600.0, minimum=0.001,
                                       doc="legacy SESSION_TIMEOUT: idle time before a session expires")
    cleanup_interval_s: float = setting(300.0, minimum=0.01, doc="legacy cleanup thread period")
    cleanup_enabled: bool = True
    auto_create: bool = setting(True, doc="add_interaction on an unknown session creates it")
    context_limit: int = setting(20, minimum=0, doc="get_context default (legacy)")
    touch_interval_s: float = setting(30.0, minimum=0.0, doc="reads refresh last_active_at at most this often")


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts).isoformat()


def session_dict(row: Session) -> dict[str, Any]:
    return {"session_id": row.session_id, "user_id": row.user_id, "session_type": row.session_type,
            "created_by": row.created_by, "metadata": dict(row.meta or {}), "created_at": row.created_at,
            "last_active_at": row.last_active_at, "expires_at": row.expires_at, "expired": bool(row.expired),
            "expired_at": row.expired_at}


class Sessions:
    def __init__(self, memories: Memories, redis: Any = None, events: Any = None,
                 settings: SessionSettings = SessionSettings()):
        self.memories = memories
        self.events = events or memories.events
        self.settings = settings
        self.timeout = self.settings.session_timeout_s
        self.cache = HotCache(redis.session if redis is not None else None, self.timeout,
                              memories.settings.cache_retry_s)
        memories.delete_hooks.append(lambda ids: self.cache.invalidate(*ids))
        self._task = PeriodicTask("session-expiry", self.settings.cleanup_interval_s, self._expire_all,
                                  when=memories.sql.is_leader)      # one replica at a time

    # ------------------------------------------------------------------ sessions
    def create(self, user_id: str = "default", session_type: str = "conversation", metadata: dict | None = None,
               created_by: str | None = None, session_id: str | None = None) -> dict[str, Any]:
        check_json_object("metadata", metadata or {}, self.memories.limits["max_metadata_bytes"])
        with self.memories.sql.transaction() as s:
            if session_id is not None and (s.get(Session, session_id) or s.get(Memory, session_id)):
                raise Conflict(f"Session {session_id} already exists.", details={"field": "session_id"})
            row = self._new(s, session_id or new_session_id(), user_id, session_type, metadata or {}, created_by)
            result = session_dict(row)
        self._announce(result)
        return result

    def _new(self, s: Any, session_id: str, user_id: str, session_type: str, metadata: dict,
             created_by: str | None) -> Session:
        for name, value in (("session_id", session_id), ("user_id", user_id), ("session_type", session_type)):
            check_name(name, value, 64 if name == "session_type" else 128)
        if created_by is not None:
            check_name("created_by", created_by, 128)
        now = stamp()
        row = Session(session_id=session_id, user_id=user_id, session_type=session_type, created_by=created_by,
                      meta=dict(metadata), created_at=now, last_active_at=now, expires_at=now + self.timeout)
        s.add(row)
        self.memories.insert(s, {"memory_id": session_id, "content": f"{session_type} session of {user_id}",
                                 "memory_type": "session", "session_id": session_id,
                                 "meta": {**metadata, "user_id": user_id, "session_type": session_type}})
        s.flush()
        return row

    def _announce(self, session: dict[str, Any]) -> None:
        self.memories._after_write([(session["session_id"], "session", "default", None)], "add")
        self.events.publish("session.created", {"session_id": session["session_id"], "user_id": session["user_id"],
                                                "session_type": session["session_type"]})

    def get(self, session_id: str) -> dict[str, Any]:
        """The session (its current Redis copy, else SQL), with ``ttl_s``: seconds until it expires."""
        found = self.cache.lookup(session_id)
        if found.hit:
            result = found.value
        else:
            with self.memories.sql.session() as s:
                row = s.get(Session, session_id)
                if row is None:
                    raise NotFound(f"Session {session_id} not found.", details={"session_id": session_id})
                result = session_dict(row)
            self.cache.fill(session_id, found, result)
        result["ttl_s"] = max(0.0, result["expires_at"] - time.time())
        return result

    def update(self, session_id: str, metadata: dict | None = None, user_id: str | None = None,
               session_type: str | None = None) -> tuple[dict[str, Any], bool]:
        """PUT semantics: create the session if absent, else merge ``metadata``. Returns (session, created)."""
        check_json_object("metadata", metadata or {}, self.memories.limits["max_metadata_bytes"])
        with self.memories.sql.transaction() as s:
            row = s.get(Session, session_id)
            created = row is None
            if created:
                if s.get(Memory, session_id) is not None:
                    raise Conflict(f"Memory {session_id} exists and is not a session.", details={"field": "session_id"})
                row = self._new(s, session_id, user_id or "default", session_type or "conversation",
                                metadata or {}, None)
            else:
                row.meta = {**(row.meta or {}), **(metadata or {})}
                self._touch(row, stamp())
            result = session_dict(row)
        if created:
            self._announce(result)
        else:
            self.cache.invalidate(session_id)
        return result, created

    def delete(self, session_id: str) -> list[str]:
        """Delete the session and all its interactions; returns the memory ids deleted."""
        return self.memories.delete(session_id, cascade=True)

    def _touch(self, row: Session, now: float) -> None:
        row.last_active_at = now
        row.expires_at = now + self.timeout

    # ------------------------------------------------------------------ interactions
    def add_interaction(self, session_id: str, role: str, content: Any, metadata: dict | None = None) -> str:
        check_name("session_id", session_id, 128)
        check_name("role", role, 64)
        content = check_content(content, self.memories.limits["max_content_bytes"])
        meta = {**check_json_object("metadata", metadata or {}, self.memories.limits["max_metadata_bytes"]),
                "role": role, "timestamp": datetime.now().isoformat()}
        created = None
        with self.memories.sql.transaction() as s:
            session = s.get(Session, session_id)
            if session is None:
                if not self.settings.auto_create or s.get(Memory, session_id) is not None:
                    raise NotFound(f"Session {session_id} not found.", details={"session_id": session_id})
                session = self._new(s, session_id, "default", "conversation", {}, None)
                created = session_dict(session)
            row = self.memories.insert(s, {"content": content, "memory_type": "interaction", "parent_id": session_id,
                                           "session_id": session_id, "memory_tier": "short", "importance": 0.5,
                                           "meta": meta, "tags": [role.lower()]})
            self._touch(session, row.created_at)
            written = (row.memory_id, "interaction", row.namespace, content)
        if created is not None:
            self._announce(created)
        self.cache.invalidate(session_id)
        self.memories._after_write([written], "add")
        return written[0]

    def context(self, session_id: str, limit: int | None = None) -> list[dict[str, Any]]:
        """The last ``limit`` interactions (children) of the session, oldest first, as ``{role, content}``."""
        limit = self.settings.context_limit if limit is None else limit
        if limit < 1:
            raise BadRequest("limit must be a positive integer", details={"field": "limit"})
        children = self.memories.children(session_id, limit, "created_at", "asc", newest=True)
        self._maybe_touch(session_id)
        return [{"role": (c["metadata"] or {}).get("role", "unknown"), "content": c["content"]} for c in children]

    def _maybe_touch(self, session_id: str) -> None:
        now = stamp()
        with self.memories.sql.session() as s:
            row = s.get(Session, session_id)
            stale = row is not None and now - row.last_active_at >= self.settings.touch_interval_s
        if stale:
            with self.memories.sql.transaction() as s:
                row = s.get(Session, session_id)
                if row is not None:
                    self._touch(row, now)
            self.cache.invalidate(session_id)

    def search(self, query: str, session_id: str | None = None, limit: int = 10) -> list[dict[str, Any]]:
        """Interactions matching ``query`` (semantic ranking when the hub has a search engine, else text)."""
        filters: dict[str, Any] = {"memory_type": "interaction"}
        if session_id:
            filters["parent_id"] = session_id
        results, how = self.memories.semantic_search(query, limit, filters)
        if not results and how != "text":
            results = self.memories.text_search(query, limit, filters)
        return results

    # ------------------------------------------------------------------ expiry
    def expire_once(self, now: float | None = None) -> list[str]:
        """Mark sessions idle longer than the timeout as expired; returns their ids."""
        now = time.time() if now is None else now
        cutoff = now - self.timeout
        with self.memories.sql.transaction() as s:
            rows = s.execute(select(Session).where(Session.expired.is_(False), Session.last_active_at < cutoff)
                             .limit(1000)).scalars().all()
            marks = {"expired": True, "expired_at": _iso(now)}
            expired = []
            for row in rows:
                row.expired, row.expired_at = True, now
                row.meta = {**(row.meta or {}), **marks}
                memory = s.get(Memory, row.session_id)
                if memory is not None:
                    memory.meta = {**(memory.meta or {}), **marks}
                    memory.updated_at = stamp()
                expired.append((row.session_id, row.user_id))
        self.cache.invalidate(*[e[0] for e in expired])
        self.memories.cache.invalidate(*[e[0] for e in expired])
        for session_id, user_id in expired:
            self.events.publish("session.expired", {"session_id": session_id, "user_id": user_id,
                                                    "expired_at": now})
        if expired:
            log.info("expired %d idle sessions", len(expired))
        return [e[0] for e in expired]

    def start(self) -> None:
        if self.settings.cleanup_enabled:
            self._task.start()

    def stop(self) -> None:
        self._task.stop()

    @property
    def alive(self) -> bool:
        return self._task.alive

    def _expire_all(self) -> None:
        while len(self.expire_once()) >= 1000:   # a full batch: more may be waiting
            pass


def interaction_view(memory: dict[str, Any]) -> dict[str, Any]:
    """An interaction memory as the native API shows it."""
    return {"interaction_id": memory["memory_id"], "role": (memory["metadata"] or {}).get("role"),
            "content": memory["content"], "created_at": memory["created_at"], "metadata": memory["metadata"]}
