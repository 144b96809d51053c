"""Generation jobs: functions that run on a model's worker thread with the ``llama_cpp.Llama`` in hand.

* ``GenParams``: validated sampling parameters (max_tokens, temperature, top_p, stop strings, seed).
* ``run_completion``: prompt (plus a conversation transcript) -> text. The prompt is tokenized with the
  model's own tokenizer first; a prompt that does not fit the context is ``BadRequest``; a conversation
  history that does not fit is trimmed from its oldest end.
* ``run_chat``: messages (plus conversation history) -> assistant message, via the model's chat format.

Streaming: ``on_token(text)`` is called on the worker thread for every chunk; an exception from it stops
the generation. ``cancel`` (a ``threading.Event``) stops the generation at the next token; so does
``deadline`` (a ``time.monotonic()`` value), and then the job raises ``Timeout``.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any
from collections.abc import Callable

from bus.errors import BadRequest, Timeout

MAX_TOKENS_LIMIT = 32768
CHAT_ROLES = ("system", "user", "assistant", "tool")
# chat format name -> llama_cpp.llama_chat_format function, for counting chat prompt tokens
CHAT_FORMATTERS = {"llama-2": "format_llama2", "llama-3": "format_llama3", "gemma": "format_gemma",
                   "chatml": "format_chatml", "mistral-instruct": "format_mistral_instruct", "qwen": "format_qwen",
                   "alpaca": "format_alpaca", "zephyr": "format_zephyr", "vicuna": "format"}


@dataclass(frozen=True)
class GenParams:
    max_tokens: int = 256
    temperature: float = 0.7
    top_p: float = 0.95
    stop: tuple[str, ...] = ()
    seed: int | None = None

    @classmethod
    def build(cls, max_tokens: Any = 256, temperature: Any = 0.7, top_p: Any = 0.95, stop: Any = None,
              seed: Any = None) -> GenParams:
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or not 1 <= max_tokens <= MAX_TOKENS_LIMIT:
            raise BadRequest(f"max_tokens must be an integer between 1 and {MAX_TOKENS_LIMIT}")
        if not isinstance(temperature, (int, float)) or isinstance(temperature, bool) or not 0 <= temperature <= 5:
            raise BadRequest("temperature must be a number between 0 and 5")
        if not isinstance(top_p, (int, float)) or isinstance(top_p, bool) or not 0 < top_p <= 1:
            raise BadRequest("top_p must be a number in (0, 1]")
        stops = (stop,) if isinstance(stop, str) else tuple(stop or ())
        if len(stops) > 16 or not all(isinstance(s, str) and s for s in stops):
            raise BadRequest("stop must be a non-empty string or a list of at most 16 non-empty strings")
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
            raise BadRequest("seed must be an integer")
        return cls(max_tokens, float(temperature), float(top_p), stops, seed)

    def llama_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"max_tokens": self.max_tokens, "temperature": self.temperature,
                                  "top_p": self.top_p, "stop": list(self.stop) or None}
        if self.seed is not None:
            kwargs["seed"] = self.seed
        return kwargs


def check_messages(messages: Any) -> list[dict[str, str]]:
    if not isinstance(messages, list) or not messages:
        raise BadRequest("messages must be a non-empty list")
    out = []
    for index, msg in enumerate(messages):
        if not isinstance(msg, dict) or msg.get("role") not in CHAT_ROLES or not isinstance(msg.get("content"), str):
            raise BadRequest(f"messages[{index}] must be {{role: {'|'.join(CHAT_ROLES)}, content: string}}")
        out.append({"role": msg["role"], "content": msg["content"]})
    return out


class _Cancel:
    """Stopping criterion: counts sampled tokens and stops when a cancel event is set.

    llama-cpp-python calls it once per sampled token with the ids so far, and once more after the
    loop with the same length; counting distinct lengths gives the number of sampled tokens."""

    def __init__(self, *events: threading.Event, deadline: float | None = None):
        self.events, self.tokens, self._last = events, 0, -1
        self.deadline = deadline

    def __call__(self, ids: Any, _logits: Any) -> bool:
        if len(ids) != self._last:
            self._last = len(ids)
            self.tokens += 1
        return self.cancelled

    @property
    def expired(self) -> bool:
        return self.deadline is not None and time.monotonic() > self.deadline

    @property
    def cancelled(self) -> bool:
        return any(e.is_set() for e in self.events) or self.expired

    def check_deadline(self, model_id: str) -> None:
        if self.expired:
            raise Timeout(f"model {model_id} did not finish before the deadline; generation stopped")


def _too_long(model_id: str, n_tokens: int, n_ctx: int, what: str = "prompt") -> BadRequest:
    return BadRequest(f"{what} is {n_tokens} tokens but model {model_id} has a context of {n_ctx} tokens",
                      details={"prompt_tokens": n_tokens, "n_ctx": n_ctx})


def run_completion(llm: Any, *, model_id: str, prompt: str, history: str, system_prompt: str | None,
                   params: GenParams, on_token: Callable[[str], None] | None,
                   cancel: tuple[threading.Event, ...], deadline: float | None = None) -> dict[str, Any]:
    """Complete ``history + prompt``; returns text, counts, timing and the new transcript."""
    new_text = f"{system_prompt}\n\n{prompt}" if system_prompt and not history else prompt
    n_ctx = llm.n_ctx()
    n_new = len(llm.tokenize(new_text.encode("utf-8"), add_bos=True, special=True))
    if n_new >= n_ctx:
        raise _too_long(model_id, n_new, n_ctx)
    full = history + new_text
    tokens = llm.tokenize(full.encode("utf-8"), add_bos=True, special=True)
    reserve = min(params.max_tokens, n_ctx // 2)
    trimmed = False
    if history and len(tokens) + reserve > n_ctx:
        tokens, full = _trim_front(llm, tokens, max(n_ctx - reserve, n_new + 1))
        trimmed = True
    if not tokens:
        raise BadRequest("prompt is empty")
    stopper = _Cancel(*cancel, deadline=deadline)
    started = time.perf_counter()
    kwargs = params.llama_kwargs()
    text, finish = _stream_completion(llm, tokens, kwargs, stopper, on_token)
    stopper.check_deadline(model_id)
    elapsed = time.perf_counter() - started
    if stopper.cancelled:
        finish = "cancelled"
    return {"text": text, "finish_reason": finish, "prompt_tokens": len(tokens),
            "completion_tokens": stopper.tokens, "elapsed_s": elapsed,
            "tokens_per_s": stopper.tokens / elapsed if elapsed > 0 else None, "history_trimmed": trimmed,
            "transcript": full + text}


def _trim_front(llm: Any, tokens: list[int], keep: int) -> tuple[list[int], str]:
    bos = llm.token_bos()
    has_bos = bool(tokens) and tokens[0] == bos
    body = tokens[1:] if has_bos else tokens
    body = body[-(keep - 1):] if keep > 1 else []
    text = llm.detokenize(body).decode("utf-8", errors="ignore")
    return ([bos] if has_bos else []) + body, text


def _stream_completion(llm: Any, tokens: list[int], kwargs: dict[str, Any], stopper: _Cancel,
                       on_token: Callable[[str], None] | None) -> tuple[str, str | None]:
    from llama_cpp import StoppingCriteriaList

    criteria = StoppingCriteriaList([stopper])
    try:
        if on_token is None:
            out = llm.create_completion(tokens, stopping_criteria=criteria, **kwargs)
            choice = out["choices"][0]
            return choice["text"], choice.get("finish_reason")
        pieces: list[str] = []
        finish = None
        for chunk in llm.create_completion(tokens, stream=True, stopping_criteria=criteria, **kwargs):
            choice = chunk["choices"][0]
            if choice.get("text"):
                pieces.append(choice["text"])
                on_token(choice["text"])
            finish = choice.get("finish_reason") or finish
        return "".join(pieces), finish
    except ValueError as exc:
        if "context window" in str(exc):
            raise BadRequest(f"prompt does not fit the model context: {exc}") from exc
        raise


def run_chat(llm: Any, *, model_id: str, history: list[dict[str, str]], messages: list[dict[str, str]],
             params: GenParams, on_token: Callable[[str], None] | None,
             cancel: tuple[threading.Event, ...], deadline: float | None = None) -> dict[str, Any]:
    """Answer ``history + messages`` as the assistant; returns the reply and the new message list."""
    n_ctx = llm.n_ctx()
    n_new = count_chat_tokens(llm, messages)
    if n_new >= n_ctx:
        raise _too_long(model_id, n_new, n_ctx, "chat prompt")
    history = list(history)
    reserve = min(params.max_tokens, n_ctx // 2)
    trimmed = False
    count = count_chat_tokens(llm, history + messages) if history else n_new
    while history and count + reserve > n_ctx:
        drop = next((i for i, m in enumerate(history) if m["role"] != "system"), 0)
        history.pop(drop)
        trimmed = True
        count = count_chat_tokens(llm, history + messages)
    convo = history + messages
    stop_event = _Cancel(*cancel, deadline=deadline)
    started = time.perf_counter()
    text, finish, chunks = _stream_chat(llm, convo, params, stop_event, on_token)
    stop_event.check_deadline(model_id)
    elapsed = time.perf_counter() - started
    # chat streams merge held-back tokens into one chunk: the re-tokenized reply is the better count
    chunks = max(chunks, len(llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)))
    if stop_event.cancelled:
        finish = "cancelled"
    reply = {"role": "assistant", "content": text}
    return {"text": text, "message": reply, "finish_reason": finish, "prompt_tokens": count,
            "completion_tokens": chunks, "elapsed_s": elapsed,
            "tokens_per_s": chunks / elapsed if elapsed > 0 else None, "history_trimmed": trimmed,
            "messages": [*convo, reply]}


def _stream_chat(llm: Any, convo: list[dict[str, str]], params: GenParams, stopper: _Cancel,
                 on_token: Callable[[str], None] | None) -> tuple[str, str | None, int]:
    pieces: list[str] = []
    finish, chunks = None, 0
    stream = llm.create_chat_completion(convo, stream=True, **params.llama_kwargs())
    try:
        for chunk in stream:
            choice = chunk["choices"][0]
            piece = (choice.get("delta") or {}).get("content")
            if piece:
                chunks += 1
                pieces.append(piece)
                if on_token is not None:
                    on_token(piece)
            finish = choice.get("finish_reason") or finish
            if stopper.cancelled:
                break
    except ValueError as exc:
        if "context window" in str(exc):
            raise BadRequest(f"chat prompt does not fit the model context: {exc}") from exc
        raise
    finally:
        stream.close()
    return "".join(pieces), finish, chunks


def count_chat_tokens(llm: Any, messages: list[dict[str, str]]) -> int:
    """Tokens of the prompt the model's chat format makes of ``messages`` (best effort)."""
    return len(llm.tokenize(_format_chat(llm, messages).encode("utf-8"), add_bos=True, special=True))


def _format_chat(llm: Any, messages: list[dict[str, str]]) -> str:
    from llama_cpp import llama_chat_format as fmt

    template = (llm.metadata or {}).get("tokenizer.chat_template")
    try:
        if llm.chat_format == "chat_template.default" and template:
            bos = llm.detokenize([llm.token_bos()], special=True).decode("utf-8", "ignore")
            eos = llm.detokenize([llm.token_eos()], special=True).decode("utf-8", "ignore")
            return fmt.Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos)(messages=messages).prompt
        formatter = getattr(fmt, CHAT_FORMATTERS.get(llm.chat_format or "", ""), None)
        if formatter is not None:
            return formatter(messages).prompt
    except Exception:  # an exotic template: fall back to the plain estimate below
        pass
    return "\n".join(f"{m['role']}: {m['content']}" for m in messages) + "\nassistant:"
