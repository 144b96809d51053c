"""The legacy PredictiveLoader's periodic ``preload_model`` request to the RequestCoordinator (optional).

Legacy behaviour (legacy-protocol.md §3.3): every 60 s, for each of the top-3 models, a REQ/JSON
``{"action": "preload_model", "model_id": ..., "priority": "low", "source": "PredictiveLoader"}`` and a
blocking wait for the reply. Here the send has a timeout; a neighbour that does not answer is retried
with exponential backoff (doubling from 5 s up to ``max_backoff_s``), never blocking the hub for long.
The REQ socket is recreated after a failure (a REQ socket that missed a reply cannot send again).
"""
from __future__ import annotations

import logging
import time
from typing import Any
from collections.abc import Callable

import zmq

log = logging.getLogger(__name__)
BASE_BACKOFF_S = 5.0


class RequestCoordinatorNotifier:
    def __init__(self, endpoint: str, timeout_ms: int = 2000, max_backoff_s: float = 600.0, *,
                 clock: Callable[[], float] = time.time, context: zmq.Context | None = None):
        self.endpoint = endpoint
        self.timeout_ms = max(1, int(timeout_ms))
        self.max_backoff_s = max(BASE_BACKOFF_S, float(max_backoff_s))
        self.clock = clock
        self._context = context or zmq.Context.instance()
        self._socket: zmq.Socket | None = None
        self.sent = 0
        self.failures = 0
        self.consecutive_failures = 0
        self.next_attempt = 0.0
        self.last_reply: Any = None
        self.last_error: str | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.endpoint)

    def send(self, model_ids: list[str]) -> int:
        """Send one preload_model request per model; returns how many were answered."""
        if not self.enabled or not model_ids or self.clock() < self.next_attempt:
            return 0
        answered = 0
        for model_id in model_ids:
            message = {"action": "preload_model", "model_id": model_id, "priority": "low", "source": "PredictiveLoader"}
            try:
                self.last_reply = self._request(message)
            except zmq.ZMQError as exc:
                self._failed(str(exc))
                return answered
            answered += 1
            self.sent += 1
        self.consecutive_failures = 0
        self.next_attempt = 0.0
        return answered

    def _request(self, message: dict) -> Any:
        sock = self._socket or self._connect()
        try:
            sock.send_json(message)
            return sock.recv_json()
        except zmq.ZMQError:
            self._reset()
            raise
        except ValueError as exc:   # a reply that is not JSON: the exchange completed, note it
            return {"undecodable_reply": str(exc)}

    def _connect(self) -> zmq.Socket:
        sock = self._context.socket(zmq.REQ)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SNDTIMEO, self.timeout_ms)
        sock.setsockopt(zmq.RCVTIMEO, self.timeout_ms)
        sock.connect(self.endpoint)
        self._socket = sock
        return sock

    def _reset(self) -> None:
        if self._socket is not None:
            self._socket.close(linger=0)
            self._socket = None

    def _failed(self, error: str) -> None:
        self.failures += 1
        self.consecutive_failures += 1
        self.last_error = error
        delay = min(self.max_backoff_s, BASE_BACKOFF_S * 2 ** (self.consecutive_failures - 1))
        self.next_attempt = self.clock() + delay
        log.warning("RequestCoordinator %s did not answer (%s); next attempt in %.0f s", self.endpoint, error, delay)

    def status(self) -> dict[str, Any]:
        return {"endpoint": self.endpoint or None, "sent": self.sent, "failures": self.failures,
                "next_attempt_in_s": max(0.0, round(self.next_attempt - self.clock(), 1)) if self.next_attempt else 0.0,
                "last_error": self.last_error}

    def close(self) -> None:
        self._reset()
