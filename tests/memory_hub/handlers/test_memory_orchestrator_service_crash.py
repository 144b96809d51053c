"""Acknowledged writes survive ``kill -9``: MemoryHub is killed (SIGKILL) after writes through the legacy and
native ports of MemoryOrchestratorService, MemoryClient, SessionMemoryAgent and KnowledgeBase, and while a
writer is still sending; a new hub on the same data directory finds every acknowledged write.
"""
from __future__ import annotations

import threading

import pytest
import zmq

from bus.errors import NotFound
from tests.support.hubproc import HubProcess

pytestmark = pytest.mark.slow


def writer(hub: HubProcess, acked: list[str], stop: threading.Event) -> None:
    """Add memories on 7140 until the hub dies; remember the ids whose reply arrived."""
    i = 0
    while not stop.is_set():
        try:
            reply = hub.legacy_request(7140, {"action": "add_memory", "data": {"content": f"stream {i}"}}, timeout=2)
        except zmq.ZMQError:
            return
        if reply.get("status") == "success":
            acked.append(reply["memory_id"])
        i += 1


def test_acknowledged_writes_survive_kill_9(tmp_path):
    data_dir = tmp_path / "hub"
    legacy_ids, native_ids = [], []
    with HubProcess("memory_hub", data_dir) as hub:
        client = hub.client()
        for i in range(20):
            reply = hub.legacy_request(7140, {"action": "add_memory", "data": {"content": f"legacy {i}",
                                                                               "tags": [f"t{i}"]}})
            legacy_ids.append(reply["memory_id"])
        native_ids = [client.call("MemoryOrchestratorService", "add_memory", {"content": f"native {i}"})["memory_id"]
                      for i in range(10)]
        batch = hub.legacy_request(7140, {"action": "batch_add_memories",
                                          "data": {"memories": [{"content": f"batch {i}"} for i in range(10)]}})
        assert hub.legacy_request(7140, {"action": "update_memory", "data": {
            "memory_id": legacy_ids[0], "update_data": {"content": "legacy 0, updated"}}}) == {"status": "success"}
        hub.legacy_request(7140, {"action": "add_relationship", "data": {
            "source_id": legacy_ids[1], "target_id": legacy_ids[2], "relationship_type": "next"}})
        group = hub.legacy_request(7140, {"action": "create_context_group", "data": {"name": "g"}})["group_id"]
        hub.legacy_request(7140, {"action": "add_to_group", "data": {"memory_id": legacy_ids[3], "group_id": group}})
        hub.legacy_request(7140, {"action": "delete_memory", "data": {"memory_id": legacy_ids[4]}})
        for i in range(10):
            client.call("MemoryClient", "kv_set", {"key": f"k{i}", "value": {"i": i}})
        client.route("PUT", "/kv/route-key", {"value": "via route"})
        session_id = hub.legacy_request(5574, {"action": "create_session", "user_id": "ana"})["session_id"]
        for i in range(5):
            hub.legacy_request(5574, {"action": "add_interaction", "session_id": session_id, "role": "user",
                                      "content": f"turn {i}"})
        fact_id = hub.legacy_request(5715, {"action": "add_fact", "topic": "Crash", "content": "Facts persist."})[
            "memory_id"]
        client.route("PUT", "/doc/crash-doc", {"content": "documents persist"})
        client.close()

        acked: list[str] = []
        stop = threading.Event()
        thread = threading.Thread(target=writer, args=(hub, acked, stop), daemon=True)
        thread.start()
        while len(acked) < 30 and thread.is_alive():
            thread.join(0.05)
        hub.kill9()
        stop.set()
        thread.join(10)

    with HubProcess("memory_hub", data_dir) as again:
        client = again.client()
        get = lambda memory_id: again.legacy_request(7140, {"action": "get_memory",     # noqa: E731
                                                            "data": {"memory_id": memory_id}})
        for i, memory_id in enumerate(legacy_ids):
            reply = get(memory_id)
            if i == 4:
                assert reply["status"] == "error"
                continue
            assert reply["status"] == "success", (i, reply)
            assert reply["memory"]["content"] == ("legacy 0, updated" if i == 0 else f"legacy {i}")
        for memory_id in native_ids + batch["memory_ids"] + acked:
            assert get(memory_id)["status"] == "success", memory_id
        assert len(acked) >= 30
        related = again.legacy_request(7140, {"action": "get_related", "data": {"memory_id": legacy_ids[1]}})
        assert related["related_memories"][0]["memory"]["memory_id"] == legacy_ids[2]
        assert again.legacy_request(7140, {"action": "get_memories_by_group", "data": {"group_id": group}})[
            "count"] == 1
        for i in range(10):
            assert client.call("MemoryClient", "kv_get", {"key": f"k{i}"})["value"] == {"i": i}
        assert client.route("GET", "/kv/route-key")["value"] == "via route"
        context = again.legacy_request(5574, {"action": "get_context", "session_id": session_id})["context"]
        assert [c["content"] for c in context] == [f"turn {i}" for i in range(5)]
        assert again.legacy_request(5715, {"action": "get_fact", "topic": "Crash"})["fact"]["memory_id"] == fact_id
        assert client.route("GET", "/doc/crash-doc")["content"] == "documents persist"
        with pytest.raises(NotFound):
            client.call("MemoryOrchestratorService", "get_memory", {"memory_id": legacy_ids[4]})
        client.close()
