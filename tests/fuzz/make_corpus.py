"""Write the seed corpus of the frame fuzzer: ``python -m tests.fuzz.make_corpus [DIR]``.

Seeds (default DIR: tests/fuzz/corpus/frames, committed): for every native action of both hubs, a request
with the smallest arguments its schema accepts, in msgpack and in JSON; the route form; and frames known
to be awkward (nesting, huge numbers, NaN, duplicate keys, truncations, wrong types in the envelope).
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import msgpack

from schemas.base import ANY, Field, Schema
from tests.fuzz.targets import all_actions, envelope

DEFAULT_DIR = Path(__file__).parent / "corpus" / "frames"


def minimal_value(spec: Field) -> Any:
    """A small value the field accepts (the first choice, the lower bound, the shortest length)."""
    if spec.choices:
        return spec.choices[0]
    kind = spec.type[0] if isinstance(spec.type, tuple) else spec.type
    if kind is ANY:
        return "x"
    if kind is bool:
        return True
    if kind in (int, float):
        low = spec.min if spec.min is not None else (0 if spec.max is None or spec.max >= 0 else spec.max)
        return math.ceil(low) if kind is int else float(low)
    if kind is str:
        return "a" * max(1, int(spec.min_len or 0)) if spec.max_len is None or spec.max_len >= 1 else ""
    if kind is bytes:
        return b"a" * int(spec.min_len or 0)
    if kind is list:
        item = minimal_value(spec.item) if spec.item is not None else "x"
        return [item] * int(spec.min_len or 0)
    if kind is dict:
        return {f"k{i}": "v" for i in range(int(spec.min_len or 0))}
    return "x"


def minimal_args(schema: Schema) -> dict:
    return {name: minimal_value(spec) for name, spec in schema.fields.items() if spec.required}


def action_seeds() -> dict[str, bytes]:
    seeds: dict[str, bytes] = {}
    for n, ref in enumerate(all_actions(), start=1):
        frame = envelope(ref.agent, ref.action, minimal_args(ref.spec.schema), n, token="t")
        seeds[f"{ref.hub}.{ref.agent}.{ref.action}.msgpack"] = msgpack.packb(frame, use_bin_type=True)
        seeds[f"{ref.hub}.{ref.agent}.{ref.action}.json"] = json.dumps(frame).encode()
    return seeds


def awkward_seeds() -> dict[str, bytes]:
    ping = {"v": 1, "id": 1, "agent": "hub", "action": "ping"}
    packed = msgpack.packb(ping)
    return {
        "route.get.json": b'{"v":1,"id":"r","method":"GET","path":"/kv/user:42","token":"t"}',
        "route.put.msgpack": msgpack.packb({"v": 1, "id": 2, "method": "PUT", "path": "/cache/nlu:k",
                                            "body": {"value": [1, 2]}}),
        "route.and.action.json": b'{"v":1,"id":3,"method":"GET","path":"/kv/a","agent":"hub","action":"ping"}',
        "deep.json": b"[" * 5000 + b"]" * 5000,
        "deep.msgpack": b"\x91" * 5000 + b"\xc0",
        "nan.json": b'{"v":1,"id":4,"agent":"MemoryOrchestratorService","action":"add_memory",'
                    b'"args":{"content":"c","importance":NaN}}',
        "huge-number.json": b'{"v":1,"id":1' + b"0" * 400 + b',"agent":"hub","action":"ping"}',
        "inf-deadline.json": b'{"v":1,"id":5,"agent":"hub","action":"ping","deadline_ms":1e999}',
        "dup-keys.json": b'{"v":1,"id":6,"id":[1],"agent":"hub","action":"ping"}',
        "bool-id.msgpack": msgpack.packb({**ping, "id": True}),
        "wrong-version.msgpack": msgpack.packb({**ping, "v": 2}),
        "args-list.msgpack": msgpack.packb({**ping, "args": [1, 2]}),
        "stream-string.json": json.dumps({**ping, "stream": "yes"}).encode(),
        "unknown-field.msgpack": msgpack.packb({**ping, "extra": 1}),
        "int-keys.msgpack": msgpack.packb({1: 2, **ping}),
        "truncated.msgpack": packed[: len(packed) // 2],
        "array32-4g.msgpack": b"\xdd\xff\xff\xff\xff",
        "str32-4g.msgpack": b"\xdb\xff\xff\xff\xff",
        "ext.msgpack": b"\xc7\x01\x00\x00",
        "not-a-map.msgpack": msgpack.packb([ping]),
        "invalid-utf8.json": b'{"v":1,"id":"\xff\xfe","agent":"hub","action":"ping"}',
        "empty": b"",
        "brace": b"{",
    }


def write(directory: Path) -> int:
    directory.mkdir(parents=True, exist_ok=True)
    seeds = {**action_seeds(), **awkward_seeds()}
    for name, data in seeds.items():
        (directory / name).write_bytes(data)
    return len(seeds)


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_DIR
    print(f"{write(target)} seeds written to {target}")
