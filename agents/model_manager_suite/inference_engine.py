"""Inference engine: completion and chat on loaded models, conversations, per-model stats.

``InferenceEngine.complete`` / ``chat`` take a model name (id, legacy load_policy preference or alias),
load the model if needed (``autoload``), lease it from the loader for the request (so it is not evicted
mid-request), run the generation job on the model's own worker thread and wait for it, at most
``timeout`` seconds (then ``Timeout`` and the generation stops at the next token).
``complete_async`` / ``chat_async`` do the same without waiting: they return a ``Future`` that the model's
thread completes (lease, conversation and stats are settled there), so the caller's thread is free at once
and a deadline (``time.monotonic()`` value) stops the generation at the next token with ``Timeout``.
A full model queue is ``Busy``; a prompt longer than the context is ``BadRequest``; an unloadable model is
``Conflict`` or ``Unavailable``. Every request is counted in SQL ``model_stats``.

Conversations (``conversation_id``): the transcript (completion) or message list (chat) is kept and
prepended to the next request; up to ``max_conversations`` (legacy 50), idle ``conversation_ttl_s``
(legacy 3600 s) expire, the least recently used beyond the limit is evicted. ``using_kv_cache`` in a
reply means the request continued an existing conversation.
"""
from __future__ import annotations

import contextlib
import logging
import threading
import time
from concurrent.futures import Future
from typing import Any
from collections.abc import Callable

from bus.errors import BadRequest, HubError, Timeout

from .conversations import Conversation, ConversationStore
from .models_settings import ModelsSettings
from .generation import GenParams, check_messages, run_chat, run_completion
from .loader import LoadedModel, ModelLoader
from .store import ModelStore
from .worker import WorkerClosed

log = logging.getLogger(__name__)
OnToken = Callable[[str], None]
WAIT_GRACE_S = 1.0     # a synchronous caller waits this long past the deadline (the model stops at a token)


class Generation(Future):
    """A generation queued or running on a model's thread; setting ``stop`` ends it at the next token."""

    def __init__(self, stop: threading.Event):
        super().__init__()
        self.stop = stop


class InferenceEngine:
    def __init__(self, loader: ModelLoader, store: ModelStore, settings: ModelsSettings, *,
                 clock: Callable[[], float] = time.time):
        self.loader, self.store = loader, store
        self.conversations = ConversationStore(settings.max_conversations, settings.conversation_ttl_s, clock=clock)
        self._conv_locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    # -- public API -----------------------------------------------------------------------------
    def complete(self, model: str, prompt: str, *, timeout: float | None = None, **kwargs: Any) -> dict[str, Any]:
        """Text completion; returns {model_id, version, text, finish_reason, prompt_tokens,
        completion_tokens, elapsed_s, tokens_per_s, conversation_id, using_kv_cache, history_trimmed}.
        Keyword arguments: those of ``complete_async`` (without ``deadline``)."""
        return self._wait(lambda deadline: self.complete_async(model, prompt, deadline=deadline, **kwargs), timeout)

    def chat(self, model: str, messages: list[dict[str, str]], *, timeout: float | None = None,
             **kwargs: Any) -> dict[str, Any]:
        """Chat completion; like ``complete`` plus ``message`` ({role: assistant, content})."""
        return self._wait(lambda deadline: self.chat_async(model, messages, deadline=deadline, **kwargs), timeout)

    def complete_async(self, model: str, prompt: str, *, max_tokens: int = 256, temperature: float = 0.7,
                       top_p: float = 0.95, stop: str | list[str] | None = None, seed: int | None = None,
                       system_prompt: str | None = None, conversation_id: str | None = None,
                       on_token: OnToken | None = None, deadline: float | None = None,
                       autoload: bool = True) -> Generation:
        if not isinstance(prompt, str):
            raise BadRequest("prompt must be a string")
        params = GenParams.build(max_tokens, temperature, top_p, stop, seed)

        def job_for(entry: LoadedModel, conv: Conversation | None) -> Callable[..., dict]:
            return lambda llm, cancel: run_completion(
                llm, model_id=entry.model_id, prompt=prompt, history=conv.transcript if conv else "",
                system_prompt=system_prompt, params=params, on_token=on_token, cancel=cancel, deadline=deadline)

        def save(holder: _ConversationHolder, entry: LoadedModel, result: dict[str, Any]) -> None:
            holder.update(entry.model_id, transcript=result.pop("transcript"))

        return self._start(model, conversation_id, job_for, save, deadline, autoload)

    def chat_async(self, model: str, messages: list[dict[str, str]], *, max_tokens: int = 256,
                   temperature: float = 0.7, top_p: float = 0.95, stop: str | list[str] | None = None,
                   seed: int | None = None, system_prompt: str | None = None, conversation_id: str | None = None,
                   on_token: OnToken | None = None, deadline: float | None = None,
                   autoload: bool = True) -> Generation:
        msgs = check_messages(messages)
        params = GenParams.build(max_tokens, temperature, top_p, stop, seed)

        def job_for(entry: LoadedModel, conv: Conversation | None) -> Callable[..., dict]:
            history = list(conv.messages) if conv else []
            if system_prompt and not history and not any(m["role"] == "system" for m in msgs):
                history = [{"role": "system", "content": system_prompt}]
            return lambda llm, cancel: run_chat(llm, model_id=entry.model_id, history=history, messages=msgs,
                                                params=params, on_token=on_token, cancel=cancel, deadline=deadline)

        def save(holder: _ConversationHolder, entry: LoadedModel, result: dict[str, Any]) -> None:
            holder.update(entry.model_id, messages=result.pop("messages"))

        return self._start(model, conversation_id, job_for, save, deadline, autoload)

    def count_tokens(self, model: str, text: str, *, autoload: bool = True) -> int:
        """Tokens of ``text`` with the model's tokenizer (BOS included if the model adds one)."""
        if not isinstance(text, str):
            raise BadRequest("text must be a string")
        with self.loader.lease(model, autoload=autoload) as entry:
            return entry.worker.call(lambda llm: len(llm.tokenize(text.encode("utf-8"), add_bos=True,
                                                                   special=True)))

    def clear_conversation(self, conversation_id: str) -> bool:
        return self.conversations.clear(conversation_id)

    def stats(self, model: str | None = None) -> dict[str, Any]:
        """Per-model stats (SQL totals + live state); one model's dict when ``model`` is given."""
        live = {info["model_id"]: info for info in self.loader.loaded()}
        totals = self.store.all_stats()
        if model is not None:
            model_id = self.loader.resolve(model)
            return _merge(totals.get(model_id) or self.store.get_stats(model_id), live.get(model_id))
        ids = sorted(set(totals) | set(live))
        return {mid: _merge(totals.get(mid) or self.store.get_stats(mid), live.get(mid)) for mid in ids}

    # -- internals ------------------------------------------------------------------------------
    def _start(self, model: str, conversation_id: str | None,
               job_for: Callable[[LoadedModel, Conversation | None], Callable[[Any, Any], dict]],
               save: Callable[[_ConversationHolder, LoadedModel, dict], None], deadline: float | None,
               autoload: bool) -> Generation:
        """Lease the model, queue the job on its thread; the returned future is completed on that thread."""
        holder = self._conversation(conversation_id).__enter__()
        try:
            last_error: HubError | None = None
            for _attempt in range(2):   # one retry when the model was swapped out under us
                lease = contextlib.ExitStack()
                entry = lease.enter_context(self.loader.lease(model, autoload=autoload))
                events = (threading.Event(), entry.worker.cancel_all)
                job = job_for(entry, holder.get(entry.model_id))

                def task(llm: Any, job: Callable[[Any, Any], dict] = job, events: tuple = events) -> dict:
                    if any(e.is_set() for e in events) or (deadline is not None and time.monotonic() > deadline):
                        raise Timeout("request given up before it ran")
                    return job(llm, events)

                try:
                    inner = entry.worker.submit(task)
                except WorkerClosed as exc:
                    lease.close()
                    last_error = exc
                    continue
                except BaseException:
                    lease.close()
                    raise
                outer = Generation(events[0])
                inner.add_done_callback(lambda done, entry=entry, lease=lease, outer=outer: self._settle(
                    done, outer, entry, lease, holder, save, conversation_id))
                return outer
            assert last_error is not None
            raise last_error
        except BaseException:
            holder.__exit__(None, None, None)
            raise

    def _settle(self, inner: Future[dict], outer: Future[dict], entry: LoadedModel,
                lease: contextlib.ExitStack, holder: _ConversationHolder,
                save: Callable[[_ConversationHolder, LoadedModel, dict], None],
                conversation_id: str | None) -> None:
        """On the model's thread: save the conversation, release lease and lock, count stats, answer.

        The caller waits on ``outer`` with no timeout of its own, so it is completed whatever fails here;
        a stats write that fails is logged and does not change the answer."""
        result: dict[str, Any] | None = None
        reply: dict[str, Any] | None = None
        failure: BaseException | None = None
        try:
            result = inner.result()
            save(holder, entry, result)
            reply = self._finish(result, entry, conversation_id, holder.existed)
        except BaseException as exc:
            failure = exc
        finally:
            lease.close()
            holder.__exit__(None, None, None)
        self._count(entry.model_id, None if failure is not None else result)
        if failure is not None:
            outer.set_exception(failure)
        else:
            outer.set_result(reply)

    def _count(self, model_id: str, result: dict[str, Any] | None) -> None:
        try:
            if result is None:
                self.store.add_stats(model_id, requests=1, errors=1, last_used=time.time())
            else:
                self.store.add_stats(model_id, requests=1, prompt_tokens=result["prompt_tokens"],
                                     tokens_generated=result["completion_tokens"], generation_s=result["elapsed_s"],
                                     last_used=time.time())
        except Exception:     # the generation is answered either way; the stats miss one request
            log.exception("counting a request of model %s failed", model_id)

    @staticmethod
    def _wait(start: Callable[[float | None], Generation], timeout: float | None) -> dict[str, Any]:
        """Start a generation with a deadline ``timeout`` seconds away and wait for it (the synchronous API)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        future = start(deadline)
        try:
            return future.result(None if timeout is None else timeout + WAIT_GRACE_S)
        except TimeoutError:
            future.stop.set()
            raise Timeout(f"the model did not finish within {timeout} s; generation stopped") from None

    def _finish(self, result: dict[str, Any], entry: LoadedModel, conversation_id: str | None,
                existed: bool) -> dict[str, Any]:
        result = dict(result)
        result.update(model_id=entry.model_id, version=entry.record.version, conversation_id=conversation_id,
                      using_kv_cache=existed)
        result["elapsed_s"] = round(result["elapsed_s"], 4)
        if result.get("tokens_per_s") is not None:
            result["tokens_per_s"] = round(result["tokens_per_s"], 2)
        return result

    def _conversation(self, conversation_id: str | None) -> _ConversationHolder:
        if conversation_id is not None and (not isinstance(conversation_id, str) or not conversation_id):
            raise BadRequest("conversation_id must be a non-empty string")
        lock = None
        if conversation_id is not None:
            with self._locks_guard:
                lock = self._conv_locks.setdefault(conversation_id, threading.Lock())
                if len(self._conv_locks) > 4 * self.conversations.max_conversations:
                    self._prune_locks()
        return _ConversationHolder(self.conversations, conversation_id, lock)

    def _prune_locks(self) -> None:
        for cid in [c for c, lk in self._conv_locks.items() if not lk.locked() and c not in self.conversations]:
            del self._conv_locks[cid]


class _ConversationHolder:
    """Serialises the turns of one conversation and saves its new state after a successful turn."""

    def __init__(self, store: ConversationStore, conversation_id: str | None, lock: threading.Lock | None):
        self.store, self.id, self.lock = store, conversation_id, lock
        self.existed = False
        self._conv: Conversation | None = None

    def __enter__(self) -> _ConversationHolder:
        if self.lock is not None:
            self.lock.acquire()
        if self.id is not None:
            self._conv = self.store.get(self.id)
            self.existed = self._conv is not None
        return self

    def __exit__(self, *_exc: Any) -> None:
        if self.lock is not None:
            self.lock.release()

    def get(self, model_id: str) -> Conversation | None:
        return self._conv

    def update(self, model_id: str, *, transcript: str | None = None,
               messages: list[dict[str, str]] | None = None) -> None:
        if self.id is None:
            return
        conv = self._conv or self.store.new(self.id, model_id)
        conv.model_id = model_id
        if transcript is not None:
            conv.transcript = transcript
        if messages is not None:
            conv.messages = messages
        conv.turns += 1
        self.store.save(conv)
        self._conv = conv


def _merge(totals: dict[str, Any], live: dict[str, Any] | None) -> dict[str, Any]:
    out = dict(totals)
    out["loaded"] = live is not None
    if live is not None:
        out.update(device=live["device"], in_flight=live["in_flight"], reserved_mb=live["reserved_mb"],
                   measured_mb=live["measured_mb"], loaded_at=live["loaded_at"], load_s=live["load_s"])
    return out
