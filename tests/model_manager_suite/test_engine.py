"""Inference engine: streaming, chat, conversations (continuity, limit, TTL, clear), prompt limits,
bounded queue (busy), deadlines, and the one-thread-per-model rule."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from bus.errors import BadRequest, Busy, Timeout


@pytest.fixture
def suite(make_suite, models_dir: Path):
    s = make_suite()
    s.loader.load("tiny-a")
    return s


def test_streaming_chunks_make_the_text(suite) -> None:
    chunks: list[str] = []
    out = suite.engine.complete("tiny-a", "hello world", max_tokens=12, temperature=0.0, on_token=chunks.append)
    assert chunks and "".join(chunks) == out["text"]
    plain = suite.engine.complete("tiny-a", "hello world", max_tokens=12, temperature=0.0)
    assert plain["text"] == out["text"]                     # greedy: same text with or without streaming


def test_stop_strings_and_sampling_params(suite) -> None:
    out = suite.engine.complete("tiny-a", "the test", max_tokens=40, temperature=0.0)
    assert len(out["text"]) > 4
    stop = out["text"][2:4]
    cut = suite.engine.complete("tiny-a", "the test", max_tokens=40, temperature=0.0, stop=[stop])
    assert stop not in cut["text"] and cut["finish_reason"] == "stop"
    sampled = suite.engine.complete("tiny-a", "the test", max_tokens=5, temperature=1.0, top_p=0.5, seed=7)
    assert sampled["completion_tokens"] > 0


def test_chat_reply(suite) -> None:
    streamed: list[str] = []
    out = suite.engine.chat("tiny-a", [{"role": "user", "content": "hello"}], max_tokens=6, temperature=0.0,
                            on_token=streamed.append)
    assert out["message"]["role"] == "assistant" and out["message"]["content"] == out["text"]
    assert "".join(streamed) == out["text"] and out["prompt_tokens"] > 0


def test_completion_conversation_continues(suite) -> None:
    first = suite.engine.complete("tiny-a", "hello", max_tokens=4, temperature=0.0, conversation_id="c1",
                                  system_prompt="be brief")
    second = suite.engine.complete("tiny-a", " again", max_tokens=4, temperature=0.0, conversation_id="c1")
    assert first["using_kv_cache"] is False and second["using_kv_cache"] is True
    assert second["prompt_tokens"] > first["prompt_tokens"]
    conv = suite.engine.conversations.get("c1")
    assert conv.turns == 2 and conv.transcript.startswith("be brief\n\nhello")
    assert " again" in conv.transcript
    assert suite.engine.clear_conversation("c1") is True
    assert suite.engine.clear_conversation("c1") is False
    third = suite.engine.complete("tiny-a", " again", max_tokens=4, conversation_id="c1")
    assert third["using_kv_cache"] is False


def test_chat_conversation_keeps_messages(suite) -> None:
    suite.engine.chat("tiny-a", [{"role": "user", "content": "one"}], max_tokens=3, conversation_id="chat",
                      system_prompt="sys")
    suite.engine.chat("tiny-a", [{"role": "user", "content": "two"}], max_tokens=3, conversation_id="chat")
    roles = [m["role"] for m in suite.engine.conversations.get("chat").messages]
    assert roles == ["system", "user", "assistant", "user", "assistant"]


def test_conversation_limit_evicts_oldest(make_suite, models_dir: Path) -> None:
    suite = make_suite(max_conversations=2)
    for cid in ("c1", "c2"):
        suite.engine.complete("tiny-a", "x", max_tokens=1, conversation_id=cid)
    suite.engine.complete("tiny-a", "y", max_tokens=1, conversation_id="c1")     # c2 is now the oldest
    suite.engine.complete("tiny-a", "z", max_tokens=1, conversation_id="c3")
    assert "c2" not in suite.engine.conversations
    assert "c1" in suite.engine.conversations and "c3" in suite.engine.conversations
    assert suite.engine.conversations.evicted == 1


def test_conversation_ttl(make_suite, models_dir: Path) -> None:
    suite = make_suite(conversation_ttl_s=0.2)
    suite.engine.complete("tiny-a", "x", max_tokens=1, conversation_id="old")
    time.sleep(0.3)
    assert suite.engine.conversations.get("old") is None
    again = suite.engine.complete("tiny-a", "x", max_tokens=1, conversation_id="old")
    assert again["using_kv_cache"] is False


def test_prompt_longer_than_context_is_bad_request(suite) -> None:
    long_prompt = "the model is a test " * 200
    with pytest.raises(BadRequest, match=r"prompt is \d+ tokens but model tiny-a has a context of 256 tokens"):
        suite.engine.complete("tiny-a", long_prompt, max_tokens=4)
    with pytest.raises(BadRequest, match="context of 256 tokens"):
        suite.engine.chat("tiny-a", [{"role": "user", "content": long_prompt}], max_tokens=4)
    assert suite.engine.stats("tiny-a")["errors"] == 2
    assert suite.engine.count_tokens("tiny-a", long_prompt) > 256


def test_long_conversation_history_is_trimmed(suite) -> None:
    chunk = "the model is a test " * 8
    results = [suite.engine.complete("tiny-a", chunk, max_tokens=16, temperature=0.0, conversation_id="long")
               for _ in range(6)]
    assert any(r["history_trimmed"] for r in results)
    assert all(r["prompt_tokens"] < 256 for r in results)


def test_bad_parameters(suite) -> None:
    for kwargs in ({"max_tokens": 0}, {"temperature": -1}, {"top_p": 0}, {"stop": [""]}, {"seed": "x"}):
        with pytest.raises(BadRequest):
            suite.engine.complete("tiny-a", "hi", **kwargs)
    with pytest.raises(BadRequest):
        suite.engine.chat("tiny-a", [{"role": "wizard", "content": "hi"}])
    with pytest.raises(BadRequest):
        suite.engine.complete("tiny-a", "hi", conversation_id="")


def test_full_queue_is_busy_and_deadline_is_timeout(make_suite, models_dir: Path) -> None:
    suite = make_suite(queue_limit=1)
    suite.loader.load("tiny-a")
    worker = suite.loader.entry("tiny-a").worker
    gate, started = threading.Event(), threading.Event()
    blocker = worker.submit(lambda llm: (started.set(), gate.wait(30)))
    assert started.wait(10)
    with pytest.raises(Timeout):
        suite.engine.complete("tiny-a", "hi", max_tokens=2, timeout=0.2)   # queued behind the blocker
    with pytest.raises(Busy) as info:
        suite.engine.complete("tiny-a", "hi", max_tokens=2)                 # the queue (1) is full
    assert info.value.retry_after_ms and info.value.retryable
    gate.set()
    blocker.result(10)
    assert suite.engine.complete("tiny-a", "hi", max_tokens=2)["completion_tokens"] > 0


def test_every_call_runs_on_the_model_thread(suite) -> None:
    worker = suite.loader.entry("tiny-a").worker
    seen = set()
    threads = [threading.Thread(target=lambda: seen.add(worker.call(lambda llm: threading.get_ident())))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert seen == {worker.thread.ident}
    assert worker.n_threads == 1


def test_unload_lets_queued_requests_finish(suite) -> None:
    worker = suite.loader.entry("tiny-a").worker
    gate, started = threading.Event(), threading.Event()
    worker.submit(lambda llm: (started.set(), gate.wait(30)))
    assert started.wait(10)
    results: list[str] = []
    requests = [threading.Thread(target=lambda: results.append(
        suite.engine.complete("tiny-a", "hi", max_tokens=3)["model_id"])) for _ in range(2)]
    for t in requests:
        t.start()
    while worker.pending < 3:
        time.sleep(0.01)
    unloader = threading.Thread(target=suite.loader.unload, args=("tiny-a",))
    unloader.start()
    while suite.loader.is_loaded("tiny-a"):
        time.sleep(0.01)
    gate.set()
    for t in [*requests, unloader]:
        t.join(30)
    assert results == ["tiny-a", "tiny-a"]
    assert not worker.thread.is_alive()
