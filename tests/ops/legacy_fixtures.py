"""Legacy data files built at test time from the schemas in legacy-protocol.md (§1.4, §2.1, §2.8, §3.4).

The CREATE TABLE statements are the legacy agents' own; rows include the oddities the importers must
report (a tier the hub refuses, empty content, broken JSON, references to missing rows).
"""
from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from pathlib import Path

MOS_SCHEMA = """
CREATE TABLE memories (
    memory_id TEXT PRIMARY KEY, content TEXT NOT NULL, memory_type TEXT NOT NULL, memory_tier TEXT NOT NULL,
    importance REAL, access_count INTEGER, last_accessed_at REAL, created_at REAL, expires_at REAL,
    metadata TEXT, tags TEXT, relationships TEXT, parent_id TEXT,
    FOREIGN KEY(parent_id) REFERENCES memories(memory_id));
CREATE TABLE memory_relationships (
    id INTEGER PRIMARY KEY AUTOINCREMENT, source_memory_id TEXT NOT NULL, target_memory_id TEXT NOT NULL,
    relationship_type TEXT NOT NULL, strength REAL DEFAULT 1.0, created_at REAL, updated_at REAL,
    FOREIGN KEY(source_memory_id) REFERENCES memories(memory_id),
    FOREIGN KEY(target_memory_id) REFERENCES memories(memory_id));
CREATE TABLE context_groups (
    id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, description TEXT, created_at REAL, updated_at REAL);
CREATE TABLE memory_group_mappings (
    id INTEGER PRIMARY KEY AUTOINCREMENT, memory_id TEXT NOT NULL, group_id INTEGER NOT NULL, created_at REAL,
    FOREIGN KEY(memory_id) REFERENCES memories(memory_id), FOREIGN KEY(group_id) REFERENCES context_groups(id));
CREATE INDEX idx_mem_type ON memories(memory_type);
CREATE INDEX idx_mem_tier ON memories(memory_tier);
CREATE INDEX idx_last_accessed ON memories(last_accessed_at);
CREATE INDEX idx_parent_id ON memories(parent_id);
CREATE INDEX idx_source_memory ON memory_relationships(source_memory_id);
CREATE INDEX idx_target_memory ON memory_relationships(target_memory_id);
CREATE INDEX idx_memory_group ON memory_group_mappings(memory_id);
CREATE INDEX idx_group_memory ON memory_group_mappings(group_id);
"""

T0 = 1_752_000_000.0
GOOD_MEMORIES = [
    # memory_id, content, type, tier, importance, access_count, last_accessed, created, expires, metadata, tags,
    # rel, parent
    ("mem-a", "The user's cat is called Miso", "knowledge_fact", "long", 0.8, 3, T0 + 50, T0, None,
     {"topic": "pets"}, ["pets"], {"parent_of": ["mem-b"]}, None),
    ("mem-b", "Miso likes tuna", "general", "medium", 0.6, 0, T0 + 10, T0 + 5, T0 + 99999, {}, [], {}, "mem-a"),
    ("mem-c", "hello there", "interaction", "short", 0.5, 1, T0 + 20, T0 + 20, None,
     {"role": "user"}, ["user"], {}, "session-42"),
    ("mem-d", "Kumusta ka?", "interaction", "short", 0.5, 0, None, T0 + 30, None, {"role": "assistant"},
     ["assistant"], {}, None),
    ("mem-e", "consolidated summary", "consolidated", "medium", 0.7, 0, T0 + 40, T0 + 40, None,
     {"source_ids": ["mem-b"]}, [], {}, None),
]
BAD_MEMORIES = [
    ("mem-bad-tier", "x", "general", "forever", 0.5, 0, T0, T0, None, "{}", "[]", "{}", None),
    ("mem-empty", "", "general", "short", 0.5, 0, T0, T0, None, "{}", "[]", "{}", None),
    ("mem-broken-json", "y", "general", "short", 0.5, 0, T0, T0, None, "{not json", "[]", "{}", None),
]
RELATIONSHIPS = [("mem-a", "mem-b", "parent_of", 1.0), ("mem-b", "mem-e", "consolidated_into", 0.7),
                 ("mem-a", "mem-gone", "related", 0.5)]
GROUPS = [(1, "pets", "facts about pets"), (2, "greetings", None)]
MAPPINGS = [("mem-a", 1), ("mem-b", 1), ("mem-c", 9)]


def build_unified_memory_db(path: Path) -> Path:
    conn = sqlite3.connect(path)
    conn.executescript(MOS_SCHEMA)
    for row in GOOD_MEMORIES:
        conn.execute("INSERT INTO memories VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                     (*row[:9], json.dumps(row[9]), json.dumps(row[10]), json.dumps(row[11]), row[12]))
    for row in BAD_MEMORIES:
        conn.execute("INSERT INTO memories VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", row)
    for source, target, kind, strength in RELATIONSHIPS:
        conn.execute("INSERT INTO memory_relationships (source_memory_id, target_memory_id, relationship_type, "
                     "strength, created_at, updated_at) VALUES (?,?,?,?,?,?)",
                     (source, target, kind, strength, T0 + 60, T0 + 61))
    for group_id, name, description in GROUPS:
        conn.execute("INSERT INTO context_groups VALUES (?,?,?,?,?)", (group_id, name, description, T0, T0 + 1))
    for memory_id, group_id in MAPPINGS:
        conn.execute("INSERT INTO memory_group_mappings (memory_id, group_id, created_at) VALUES (?,?,?)",
                     (memory_id, group_id, T0 + 70))
    conn.commit()
    conn.close()
    return path


TRUST_SCHEMA = """
CREATE TABLE model_scores (model_id TEXT PRIMARY KEY, trust_score REAL DEFAULT 0.5,
    total_interactions INTEGER DEFAULT 0, successful_interactions INTEGER DEFAULT 0, last_updated TIMESTAMP);
CREATE TABLE performance_logs (id INTEGER PRIMARY KEY AUTOINCREMENT, model_id TEXT, success BOOLEAN,
    response_time REAL, error_message TEXT, timestamp TIMESTAMP,
    FOREIGN KEY (model_id) REFERENCES model_scores(model_id));
"""
STAMP = datetime(2025, 7, 10, 12, 30, 15, 123456)
SCORES = [("phi-3", 0.82, 10, 9), ("tinyllama", 0.41, 4, 1), ("mistral", 0.5, 0, 0)]
LOGS = [("phi-3", 1, 0.4, None), ("phi-3", 0, 2.5, None), ("tinyllama", 1, 1.0, None), ("tinyllama", 0, 4.9, None)]


def build_trust_db(path: Path) -> Path:
    conn = sqlite3.connect(path)
    conn.executescript(TRUST_SCHEMA)
    for model_id, score, total, ok in SCORES:
        conn.execute("INSERT INTO model_scores VALUES (?,?,?,?,?)", (model_id, score, total, ok, str(STAMP)))
    for i, (model_id, success, response_time, error) in enumerate(LOGS):
        conn.execute("INSERT INTO performance_logs (model_id, success, response_time, error_message, timestamp) "
                     "VALUES (?,?,?,?,?)", (model_id, success, response_time, error, str(STAMP.replace(second=i))))
    conn.execute("INSERT INTO performance_logs (model_id, success, response_time, timestamp) VALUES (NULL,1,0.1,?)",
                 (str(STAMP),))
    conn.commit()
    conn.close()
    return path


EVAL_SCHEMA = """
CREATE TABLE performance_metrics (metric_id TEXT PRIMARY KEY, agent_name TEXT NOT NULL, metric_name TEXT NOT NULL,
    value REAL NOT NULL, timestamp TIMESTAMP NOT NULL, context TEXT);
CREATE TABLE model_evaluation_scores (evaluation_id TEXT PRIMARY KEY, model_name TEXT NOT NULL,
    cycle_id TEXT NOT NULL, trust_score REAL NOT NULL, accuracy REAL, f1_score REAL, avg_latency_ms REAL NOT NULL,
    evaluation_timestamp TIMESTAMP NOT NULL, comparison_data TEXT);
"""
METRICS = [("m-1", "ModelManagerAgent", "latency_ms", 120.5, {"model": "phi-3"}),
           ("m-2", "PredictiveLoader", "hit_rate", 0.75, None)]
EVALUATIONS = [("e-1", "phi-3", "3f2b9c1e-0000-4000-8000-000000000001", 0.9, 0.88, 0.87, 210.0, {"baseline": "v1"}),
               ("e-2", "tinyllama", "3f2b9c1e-0000-4000-8000-000000000002", 0.4, None, None, 95.0, None)]


def build_evaluation_db(path: Path) -> Path:
    conn = sqlite3.connect(path)
    conn.executescript(EVAL_SCHEMA)
    for metric_id, agent, name, value, context in METRICS:
        conn.execute("INSERT INTO performance_metrics VALUES (?,?,?,?,?,?)",
                     (metric_id, agent, name, value, STAMP.isoformat(), json.dumps(context) if context else None))
    for ev in EVALUATIONS:
        conn.execute("INSERT INTO model_evaluation_scores VALUES (?,?,?,?,?,?,?,?,?)",
                     (*ev[:7], STAMP.isoformat(), json.dumps(ev[7]) if ev[7] else None))
    conn.commit()
    conn.close()
    return path


SESSIONS = {
    "user1_2025-07-10": [
        {"timestamp": T0 + 2, "type": "system_response", "content": "It is sunny.", "metadata": {"model": "phi"}},
        {"timestamp": T0 + 1, "type": "user_query", "content": "What's the weather?"},
    ],
    "user2_project": [{"timestamp": T0 + 5, "type": "code", "content": "SELECT 1"},
                      {"timestamp": T0 + 6, "type": "error"}],      # no content: reported
}
SUMMARIES = {"user1_2025-07-10": {"last_updated": T0 + 3, "conversation_summary": "Conversation Summary:\n",
                                  "errors_encountered": []}}
PATTERNS = {"patterns": {
    "timeout": {"pattern": "timed? ?out", "solution": "retry with backoff", "last_seen": T0, "occurrence_count": 4},
    "cuda_oom": {"pattern": "CUDA out of memory", "solution": "unload a model", "last_seen": T0 + 9,
                 "occurrence_count": 1},
    "broken": "not an object"},
    "history": [{"timestamp": T0, "error_type": "timeout", "pattern": "timed? ?out", "solution": "retry"}]}
TWINS = {"user1": {"preferences": {"language": "tl"}, "name": "Ana"}, "user2": {"traits": ["curious"]},
         "user3": "not a dict"}


def build_reasoning_json(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "memory_store.json").write_text(json.dumps({"sessions": SESSIONS, "summaries": SUMMARIES}))
    (directory / "error_patterns.json").write_text(json.dumps(PATTERNS))
    (directory / "digital_twin_store.json").write_text(json.dumps(TWINS))
    return directory
