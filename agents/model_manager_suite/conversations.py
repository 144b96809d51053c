"""Per-conversation state (legacy GGUFModelManager: up to 50 conversations, 1 h timeout, oldest evicted).

A conversation keeps the text so far: ``transcript`` for completion requests (prompt and output
appended turn after turn) and ``messages`` for chat requests. Expiry is checked on every access (at
most ``max_conversations`` entries, so the sweep is cheap); ``clear(id)`` forgets one.
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any
from collections.abc import Callable


@dataclass
class Conversation:
    id: str
    model_id: str
    created: float
    last_used: float
    transcript: str = ""
    messages: list[dict[str, str]] = field(default_factory=list)
    turns: int = 0

    def info(self) -> dict[str, Any]:
        return {"conversation_id": self.id, "model_id": self.model_id, "created": self.created,
                "last_used": self.last_used, "turns": self.turns, "messages": len(self.messages),
                "transcript_chars": len(self.transcript)}


class ConversationStore:
    def __init__(self, max_conversations: int = 50, ttl_s: float = 3600.0,
                 clock: Callable[[], float] = time.time):
        self.max_conversations, self.ttl_s, self.clock = max(1, max_conversations), ttl_s, clock
        self._items: OrderedDict[str, Conversation] = OrderedDict()   # least recently used first
        self._lock = threading.Lock()
        self.evicted = 0
        self.expired = 0

    def get(self, conversation_id: str) -> Conversation | None:
        with self._lock:
            self._expire_locked()
            return self._items.get(conversation_id)

    def save(self, conv: Conversation) -> None:
        """Store (or refresh) a conversation; the least recently used ones beyond the limit are dropped."""
        with self._lock:
            conv.last_used = self.clock()
            self._items[conv.id] = conv
            self._items.move_to_end(conv.id)
            while len(self._items) > self.max_conversations:
                self._items.popitem(last=False)
                self.evicted += 1

    def new(self, conversation_id: str, model_id: str) -> Conversation:
        now = self.clock()
        return Conversation(id=conversation_id, model_id=model_id, created=now, last_used=now)

    def clear(self, conversation_id: str) -> bool:
        with self._lock:
            return self._items.pop(conversation_id, None) is not None

    def expire(self) -> list[str]:
        with self._lock:
            return self._expire_locked()

    def list(self) -> list[dict[str, Any]]:
        with self._lock:
            self._expire_locked()
            return [c.info() for c in self._items.values()]

    def __len__(self) -> int:
        with self._lock:
            self._expire_locked()
            return len(self._items)

    def __contains__(self, conversation_id: str) -> bool:
        return self.get(conversation_id) is not None

    def _expire_locked(self) -> list[str]:
        if self.ttl_s <= 0:
            return []
        cutoff = self.clock() - self.ttl_s
        gone = [cid for cid, conv in self._items.items() if conv.last_used < cutoff]
        for cid in gone:
            del self._items[cid]
        self.expired += len(gone)
        return gone
