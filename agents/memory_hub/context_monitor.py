"""ProactiveContextMonitor's background task: context history, topic shifts, related-memory suggestions.

Inputs
  * ``add_context(data)`` (legacy and native ``add_context``): stored in the history (SQL table
    ``proactive_context_history``, newest 100 kept, as the legacy in-memory list), published as
    ``context.added`` and analysed.
  * ``observe(topic, fields)``: hub events handed over in-process (the hub calls it for every event it
    publishes). ``memory.added`` -> related to the current topic? ``session.created``/``session.expired``
    -> the topic baseline restarts; any other ``context.*`` event with text (e.g. from ContextManager)
    -> analysed as context. Events this monitor published itself are ignored.
  * A poll of SQL every ``poll_interval_s`` as the fallback when no event arrives (only on the replica
    that runs the once-only work, ``SqlStore.is_leader``, so replicas sharing a database publish once):
    new ``memories`` rows (``created_at`` past the watermark) and new ``context_items`` rows (id past the
    watermark; analysed, not re-published: ContextManager publishes its own ``context.added``). Memories
    and context items seen through ``observe`` (by ``memory_id`` / ``item_id``) are not processed twice.
    Replicas sharing one Redis suggest a memory once: the first to decide claims it (``SET NX``).

Outputs (PUB, each through a token bucket per topic, ``rate_limits``; suppressed events are counted):
  * ``context.added``      {agent, origin, timestamp, text}
  * ``context.changed``    {agent, origin, text, similarity, method: "embedding"|"keyword",
                            previous_topic: [keywords], topic: [keywords]}
  * ``context.suggestion`` {agent, origin, text, reason: "context"|"memory", memories: [{memory_id, content, score}]}

Topic shift: with an embedder (the search engine's ``embedder``) the cosine similarity of the new text to
the mean of the current topic's recent vectors, below ``shift_threshold``; otherwise the share of the new
text's keywords already in the topic, below ``keyword_shift_threshold``. Related memories come from
``search.search`` (hybrid) when available, else from an SQL keyword match on ``memories``.
"""
from __future__ import annotations

import json
import queue
import re
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any
from collections.abc import Callable

import numpy as np

from agents.memory_hub.context_sources import (keyword_related, max_context_item_id, memory_content,
                                               new_context_items, new_memories, new_sessions)
from bus.errors import HubError
from bus.log import get_logger
from bus.periodic import PeriodicTask
from bus.settings import setting

log = get_logger("memory_hub.context_monitor")

AGENT = "ProactiveContextMonitor"
OWN_TOPICS = ("context.added", "context.changed", "context.suggestion")
CLAIM_PREFIX = "context-monitor:suggested:"   # Redis db0 (cache namespace): which replica suggested a memory
CLAIM_TTL_S = 3600.0

@dataclass(frozen=True)
class RateLimit:
    """A token bucket: ``rate_per_s`` tokens come back per second, up to ``burst``."""

    rate_per_s: float = setting(1.0, minimum=0.0)
    burst: int = setting(5, minimum=1)


def _default_rate_limits() -> dict[str, RateLimit]:
    return {"context.added": RateLimit(5.0, 20), "context.changed": RateLimit(1.0, 5),
            "context.suggestion": RateLimit(1.0, 5)}


@dataclass(frozen=True)
class ContextMonitorSettings:
    """The ``context_monitor`` section."""

    history_max: int = setting(100, minimum=1, doc="legacy cap of the context history")
    max_context_bytes: int = setting(65536, minimum=1, doc="JSON size of one add_context")
    poll_interval_s: float = setting(5.0, minimum=0.01, doc="SQL fallback poll (memories, context items)")
    use_embeddings: bool = setting(True, doc="use the search engine's embedder when there is one")
    shift_threshold: float = setting(0.35, minimum=-1.0, maximum=1.0,
                                     doc="cosine to the topic below which the topic changed")
    keyword_shift_threshold: float = setting(0.2, minimum=0.0, maximum=1.0,
                                             doc="share of known keywords below which the topic changed")
    topic_window: int = setting(5, minimum=1, doc="recent texts forming the current topic")
    suggestions: int = setting(3, minimum=0, doc="related memories per suggestion")
    min_suggestion_score: float = setting(0.3, minimum=0.0, maximum=1.0,
                                          doc="keyword-overlap share (SQL fallback) a memory needs")
    queue_size: int = setting(1000, minimum=1, doc="pending analyses before the oldest is dropped")
    max_text_chars: int = setting(2000, minimum=1)
    # a token bucket per published topic
    rate_limits: dict[str, RateLimit] = field(default_factory=_default_rate_limits)

STOP_WORDS = frozenset(["a", "an", "and", "are", "as", "at", "be", "been", "but", "by", "can", "could", "did", "do",
                        "does", "for", "from", "had", "has", "have", "he", "her", "his", "how", "i", "if", "in",
                        "into", "is", "it", "its", "just", "me", "my", "no", "not", "of", "on", "or", "our", "she",
                        "so", "than", "that", "the", "their", "them", "then", "there", "these", "they", "this", "to",
                        "too", "us", "was", "we", "were", "what", "when", "where", "which", "who", "why", "will",
                        "with", "would", "you", "your", "about", "also", "any", "some", "ok", "okay", "yes", "yeah",
                        "please", "thanks"])
WORD = re.compile(r"[^\W_]{3,}", re.UNICODE)


def keywords(text: str) -> set[str]:
    return {w for w in WORD.findall(text.lower()) if w not in STOP_WORDS}


def context_text(data: Any, limit: int = 2000) -> str:
    """The text of a legacy context value: a string, the text-like fields of an object, or its JSON."""
    if isinstance(data, str):
        text = data
    elif isinstance(data, dict):
        parts = [str(data[k]) for k in ("text", "content", "message", "query", "utterance", "topic") if data.get(k)]
        text = " ".join(parts) if parts else json.dumps(data, default=str, ensure_ascii=False)
    elif isinstance(data, list):
        text = " ".join(context_text(item, limit) for item in data)
    else:
        text = json.dumps(data, default=str)
    return text[:limit]


class TokenBucket:
    """``allow()`` takes a token if there is one; ``rate_per_s`` tokens come back per second up to ``burst``."""

    def __init__(self, rate_per_s: float, burst: int, clock: Callable[[], float] = time.monotonic):
        self.rate = max(0.0, float(rate_per_s))
        self.burst = max(1, int(burst))
        self.clock = clock
        self.tokens = float(self.burst)
        self.updated = clock()
        self._lock = threading.Lock()

    def allow(self) -> bool:
        with self._lock:
            now = self.clock()
            self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
            self.updated = now
            if self.tokens >= 1.0:
                self.tokens -= 1.0
                return True
            return False


class TopicTracker:
    """The current topic (recent texts since the last shift) and the shift test."""

    def __init__(self, settings: ContextMonitorSettings, encode: Callable[[list[str]], np.ndarray] | None):
        self.encode = encode
        self.threshold = settings.shift_threshold
        self.keyword_threshold = settings.keyword_shift_threshold
        self.window: deque[tuple[set[str], np.ndarray | None]] = deque(maxlen=settings.topic_window)

    @property
    def method(self) -> str:
        return "embedding" if self.encode is not None else "keyword"

    def topic_keywords(self) -> list[str]:
        return sorted(set().union(*(words for words, _ in self.window)))[:20] if self.window else []

    def reset(self) -> None:
        self.window.clear()

    def similarity(self, text: str) -> tuple[float | None, set[str], np.ndarray | None]:
        words = keywords(text)
        vector = self.encode([text])[0] if self.encode is not None and text.strip() else None
        if not self.window or (vector is None and not words):
            return None, words, vector
        if vector is not None and all(v is not None for _, v in self.window):
            centroid = np.mean([v for _, v in self.window], axis=0)
            norm = float(np.linalg.norm(centroid))
            return (float(np.dot(centroid, vector) / norm) if norm else 0.0), words, vector
        known = set().union(*(w for w, _ in self.window))
        return (len(words & known) / len(words) if words else 1.0), words, vector

    def update(self, text: str) -> dict[str, Any] | None:
        """Add ``text`` to the topic; returns the ``context.changed`` fields when the topic shifted."""
        similarity, words, vector = self.similarity(text)
        threshold = self.threshold if vector is not None else self.keyword_threshold
        changed = similarity is not None and similarity < threshold
        previous = self.topic_keywords()
        if changed:
            self.window.clear()
        if words or vector is not None:
            self.window.append((words, vector))
        if not changed:
            return None
        return {"similarity": round(similarity, 4), "method": "embedding" if vector is not None else "keyword",
                "previous_topic": previous, "topic": sorted(words)[:20]}


class SeenIds:
    """A bounded set of ids already processed (memories seen through events and the poll)."""

    def __init__(self, size: int = 10000):
        self.size = size
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def __contains__(self, item: str) -> bool:
        with self._lock:
            return item in self._ids

    def add(self, item: str) -> bool:
        """True if new."""
        with self._lock:
            if item in self._ids:
                return False
            self._ids[item] = None
            if len(self._ids) > self.size:
                self._ids.popitem(last=False)
            return True


class ContextMonitor:
    """The background task; ``history`` stores the legacy context history (see the handler)."""

    def __init__(self, settings: ContextMonitorSettings, history: Any, events: Any, sql: Any = None,
                 redis: Any = None, search: Any = None):
        self.settings = settings
        self.history = history
        self.events = events
        self.sql = sql
        self.redis = redis
        self.search = search
        self.buckets = {topic: TokenBucket(limit.rate_per_s, limit.burst)
                        for topic, limit in settings.rate_limits.items()}
        self.published = {topic: 0 for topic in OWN_TOPICS}
        self.suppressed = {topic: 0 for topic in OWN_TOPICS}
        self.dropped = 0
        self.tracker = TopicTracker(settings, self._encoder())
        self.seen_memories = SeenIds()
        self.seen_texts = SeenIds(200)
        self.seen_items = SeenIds()
        self.suggested = SeenIds(200)
        self._queue: queue.Queue = queue.Queue(maxsize=settings.queue_size)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # the SQL poll runs on the analysis thread too (the tracker is not shared): the task only queues it
        self._poller = PeriodicTask("context-monitor-poll", settings.poll_interval_s,
                                    lambda: self._enqueue(("poll",)))
        self._marks: dict[str, float] = {}
        self._polling = True

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._marks = self._initial_marks()
        self._thread = threading.Thread(target=self._run, name="context-monitor", daemon=True)
        self._thread.start()
        self._poller.start()

    def stop(self) -> None:
        self._poller.stop()
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def drain(self, timeout: float = 10.0) -> bool:
        """Wait until every queued item is analysed (tests and shutdown)."""
        until = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < until:
            time.sleep(0.01)
        return not self._queue.unfinished_tasks

    # ------------------------------------------------------------------ inputs
    def add_context(self, data: Any, origin: str = "add_context") -> dict[str, Any]:
        """Store ``data`` in the history, publish ``context.added``, queue the analysis."""
        entry = self.history.add(data)
        text = context_text(data, self.settings.max_text_chars)
        self.publish("context.added", {"origin": origin, "timestamp": entry["timestamp"], "text": text})
        self._enqueue(("context", text, origin))
        return entry

    def observe(self, topic: str, fields: dict[str, Any] | None) -> None:
        """Hub events, in-process; never blocks (the queue drops its oldest item when full)."""
        fields = dict(fields or {})
        if fields.get("agent") == AGENT:
            return
        if topic == "memory.added":
            self._enqueue(("memory", fields))
        elif topic in ("session.created", "session.expired"):
            self._enqueue(("reset", topic))
        elif topic.startswith("context."):
            if fields.get("item_id") is not None and not self.seen_items.add(str(fields["item_id"])):
                return
            text = context_text(fields.get("text") or fields.get("content") or fields.get("context") or "",
                                self.settings.max_text_chars)
            if text.strip():
                self._enqueue(("context", text, str(fields.get("agent") or fields.get("source") or topic)))

    def _enqueue(self, item: tuple) -> None:
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            try:
                self._queue.get_nowait()
                self._queue.task_done()
            except queue.Empty:
                pass
            self.dropped += 1
            self._queue.put_nowait(item)

    # ------------------------------------------------------------------ outputs
    def publish(self, topic: str, fields: dict[str, Any]) -> bool:
        bucket = self.buckets.get(topic)
        if bucket is not None and not bucket.allow():
            self.suppressed[topic] = self.suppressed.get(topic, 0) + 1
            return False
        self.events.publish(topic, {"agent": AGENT, **fields})
        self.published[topic] = self.published.get(topic, 0) + 1
        return True

    def stats(self) -> dict[str, Any]:
        return {"running": self.running, "method": self.tracker.method, "topic": self.tracker.topic_keywords(),
                "published": dict(self.published), "suppressed": dict(self.suppressed),
                "dropped": self.dropped, "pending": self._queue.qsize()}

    # ------------------------------------------------------------------ the task
    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                item = self._queue.get(timeout=0.5)
            except queue.Empty:
                continue
            try:
                self._process(item)
            except Exception as exc:  # the task must survive anything one item does
                log.error("context_monitor_item_failed", kind=item[0], error=repr(exc))
            finally:
                self._queue.task_done()

    def _process(self, item: tuple) -> None:
        kind = item[0]
        if kind == "context":
            self.analyse(item[1], item[2], dedupe=item[2] != "add_context")
        elif kind == "memory":
            self.consider_memory(item[1])
        elif kind == "reset":
            self.tracker.reset()
        elif kind == "poll":
            self._poll_safely()

    def analyse(self, text: str, origin: str, dedupe: bool = False) -> None:
        """Topic shift, then related memories, for one context text (``dedupe``: skip a text seen lately,
        for sources that may arrive twice: an event and the SQL poll)."""
        fresh = self.seen_texts.add(str(hash(text)))
        if not text.strip() or (dedupe and not fresh):
            return
        changed = self.tracker.update(text)
        if changed is not None:
            self.suggested = SeenIds(200)
            self.publish("context.changed", {"origin": origin, "text": text[:500], **changed})
        related = [m for m in self.related(text) if self.suggested.add(m["memory_id"])]
        if related:
            self.publish("context.suggestion", {"origin": origin, "text": text[:500], "reason": "context",
                                                "memories": related})

    def consider_memory(self, fields: dict[str, Any]) -> None:
        """A new memory: suggest it when it belongs to the current topic."""
        memory_id = str(fields.get("memory_id") or fields.get("id") or "")
        if memory_id and not self.seen_memories.add(memory_id):
            return
        text = str(fields.get("content") or fields.get("text") or "") or memory_content(self.sql, memory_id)
        if not text or not self.tracker.window:
            return
        similarity, _, vector = self.tracker.similarity(text)
        threshold = self.tracker.threshold if vector is not None else self.tracker.keyword_threshold
        if similarity is None or similarity < threshold or (memory_id and not self.suggested.add(memory_id)):
            return
        if memory_id and not self._claim(memory_id):
            return
        self.publish("context.suggestion", {
            "origin": "memory.added", "text": " ".join(self.tracker.topic_keywords()), "reason": "memory",
            "memories": [{"memory_id": memory_id, "content": text[:300], "score": round(similarity, 4)}]})

    def _claim(self, memory_id: str) -> bool:
        """Replicas sharing one Redis: the first to suggest a memory publishes it (True: this one)."""
        redis = self.redis
        if redis is None:
            return True
        try:
            return redis.cache.set(f"{CLAIM_PREFIX}{memory_id}", "1", ttl=CLAIM_TTL_S, nx=True)
        except HubError:              # Redis down: a possible duplicate beats a lost suggestion
            return True

    def related(self, text: str) -> list[dict[str, Any]]:
        limit = self.settings.suggestions
        search = self.search
        if search is not None and self.tracker.encode is not None:
            try:
                hits = search.search(text, k=limit, mode="vector")
                related = [{"memory_id": h["memory_id"], "content": str(h["memory"].get("content", ""))[:300],
                            "score": round(float(h["score"]), 4)} for h in hits
                           if float(h["score"]) >= self.tracker.threshold]
                if related:
                    return related
                # nothing close among embedded rows: rows written by other processes may not be embedded yet
            except HubError as err:
                log.warning("context_monitor_search_failed", error=err.message)
        return keyword_related(self.sql, text, limit, self.settings.min_suggestion_score)

    # ------------------------------------------------------------------ SQL fallback
    def _encoder(self) -> Callable[[list[str]], np.ndarray] | None:
        embedder = getattr(self.search, "embedder", None)
        if embedder is None or not self.settings.use_embeddings:
            return None
        return embedder.encode

    def _initial_marks(self) -> dict[str, float]:
        marks = {"memories": time.time(), "sessions": time.time(), "context_items": 0.0}
        if self.sql is not None:
            try:
                marks["context_items"] = float(max_context_item_id(self.sql))
            except HubError as err:
                log.warning("context_monitor_poll_failed", error=err.message)
        return marks

    def _poll_safely(self) -> None:
        if self.sql is None:
            return
        try:
            if not self.sql.is_leader():       # replicas: one polls, so one publishes
                self._polling = False
                return
            if not self._polling:                       # just took over: start from now, not from our start
                self._marks, self._polling = self._initial_marks(), True
            self.poll()
        except HubError as err:
            log.warning("context_monitor_poll_failed", error=err.message)

    def poll(self) -> None:
        """New sessions, memories (judged against the topic as it was), then context items."""
        sql = self.sql
        for created_at in new_sessions(sql, self._marks["sessions"]):
            self._marks["sessions"] = max(self._marks["sessions"], created_at)
            self.tracker.reset()
        for memory_id, content, created_at in new_memories(sql, self._marks["memories"]):
            self._marks["memories"] = max(self._marks["memories"], created_at)
            self.consider_memory({"memory_id": memory_id, "content": content})
        for item_id, text in new_context_items(sql, self._marks["context_items"]):
            self._marks["context_items"] = max(self._marks["context_items"], float(item_id))
            if self.seen_items.add(str(item_id)):       # ContextManager published its own context.added
                self.analyse(text[:self.settings.max_text_chars], "ContextManager", dedupe=True)
