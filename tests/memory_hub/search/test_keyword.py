"""Keyword search on both backends (BM25 over FTS5 on SQLite, ts_rank_cd over a generated tsvector on
PostgreSQL): rare tokens and names, query sanitising, an index kept by the database for every write."""
from __future__ import annotations

import sqlite3

import pytest
from hypothesis import given, settings, strategies as st

from agents.memory_hub.search import keyword_pg
from agents.memory_hub.search.keyword import affordable_phrases, fts_phrases, fts_query, query_chunks
from tests.memory_hub.search.corpus import insert_rows, memory_row, populated, sentences


@pytest.fixture(scope="module")
def engine(module_sql_url, tmp_path_factory, embedder):
    rows = [memory_row(text) for text in sentences(300, seed=3)]
    rows.append(memory_row("Locker combination for the gym: ZX-4471.", memory_id="code"))
    rows.append(memory_row("Ask Thorvaldsdottir about the invoice.", memory_id="name"))
    rows.append(memory_row("The ZX series printer jammed again; model 9913.", memory_id="near-code"))
    yield from populated(module_sql_url, tmp_path_factory, embedder, rows)


def test_rare_code_is_found_by_keyword_and_hybrid(engine):
    assert engine.search("ZX-4471", k=3, mode="keyword")[0]["memory_id"] == "code"
    assert engine.search("ZX-4471", k=3, mode="hybrid")[0]["memory_id"] == "code"
    # in a sentence the code is a third of the query's words: meaning leads, the exact match stays in the top 3
    # (hybrid ranks by cosine plus a keyword bonus gated on word coverage: ranking.fuse)
    assert "code" in [h["memory_id"] for h in engine.search("what was the code ZX-4471 for?", k=3, mode="hybrid")]


def test_rare_name_is_found_even_if_vectors_miss_it(engine):
    assert engine.search("Thorvaldsdottir", k=1, mode="keyword")[0]["memory_id"] == "name"
    hybrid = [h["memory_id"] for h in engine.search("Thorvaldsdottir", k=3, mode="hybrid")]
    assert hybrid[0] == "name"


def test_keyword_scores_are_positive_and_sorted(engine):
    hits = engine.search("Thorvaldsdottir invoice", k=5, mode="keyword")
    assert hits and all(h["keyword_score"] > 0 and h["vector_score"] is None for h in hits)
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)


def test_stemming_matches_word_forms(engine):
    insert_rows(engine.engine, [memory_row("She was running along the canal.", memory_id="run")])
    assert "run" in [h["memory_id"] for h in engine.search("runs", k=5, mode="keyword")]


def test_rows_written_by_other_code_are_keyword_searchable(engine):
    insert_rows(engine.engine, [memory_row("Quokka sighting on Rottnest island.", memory_id="other-path")])
    assert engine.search("quokka", k=1, mode="keyword")[0]["memory_id"] == "other-path"
    with engine.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE memories SET content = 'Wombat sighting.' WHERE memory_id = 'other-path'")
    assert engine.search("quokka", k=1, mode="keyword") == []
    assert engine.search("wombat", k=1, mode="keyword")[0]["memory_id"] == "other-path"
    with engine.engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM memories WHERE memory_id = 'other-path'")
    assert engine.search("wombat", k=1, mode="keyword") == []


def test_tags_are_keyword_searchable(engine):
    insert_rows(engine.engine, [memory_row("Buy more milk.", memory_id="tagged", tags=["groceries"])])
    assert engine.search("groceries", k=1, mode="keyword")[0]["memory_id"] == "tagged"


@pytest.mark.parametrize("query", ['"', "AND", "NEAR(a b)", "*", "col:value", "a OR", "(((", "^x", "'; DROP TABLE",
                                   "\u00e9t\u00e9 caf\u00e9", "-", "!!!", "the of and"])
def test_hostile_queries_never_raise(engine, query):
    for mode in ("keyword", "hybrid"):
        assert isinstance(engine.search(query, k=5, mode=mode), list)


def test_query_without_words_gives_no_keyword_hits(engine):
    assert fts_query("?!* ()") is None
    assert engine.search("?!* ()", k=5, mode="keyword") == []


def test_health_names_the_keyword_engine(engine):
    expected = {"sqlite": "fts5", "postgresql": "postgres"}[engine.engine.dialect.name]
    assert engine.health()[1]["fts"] == expected
    status = engine.maintainer.status["fts"]     # the start-up check: FTS5 consistent, or the GIN index there
    assert status.get("consistent", status.get("gin_index")) is True


def test_common_phrases_are_dropped_beyond_the_match_budget(engine):
    assert fts_phrases("the sofa ZX-4471") == ['"sofa"', '"ZX-4471"']
    postgres = engine.engine.dialect.name == "postgresql"
    phrases = keyword_pg.phrases(query_chunks("the sofa ZX-4471")) if postgres else fts_phrases("the sofa ZX-4471")
    count = keyword_pg.counts if postgres else None
    with engine.engine.connect() as conn:
        assert affordable_phrases(conn, phrases, 5, count) == ['"ZX-4471"']
        assert affordable_phrases(conn, phrases, 0, count) == phrases
        assert affordable_phrases(conn, ['"sofa"', '"nonexistentword"'], 5, count) == ['"sofa"']


@settings(max_examples=300, deadline=None)
@given(st.text(min_size=1, max_size=40) | st.text(alphabet="\"*^:()-+ ANDORNEAR\x00ab", max_size=30))
def test_sanitised_query_is_always_valid_fts5(text):
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE VIRTUAL TABLE t USING fts5(x, tokenize='porter unicode61 remove_diacritics 2')")
    conn.execute("INSERT INTO t VALUES ('some text ZX-4471')")
    match = fts_query(text)
    if match is not None:
        conn.execute("SELECT rowid FROM t WHERE t MATCH ?", (match,)).fetchall()


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=40) | st.text(alphabet="\"*^:()-+ ANDORNEAR!&|<>'\\\x00ab", max_size=30))
def test_sanitised_query_is_always_valid_websearch(engine, text):
    if engine.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL's websearch syntax; FTS5's is test_sanitised_query_is_always_valid_fts5")
    with engine.engine.connect() as conn:
        assert isinstance(keyword_pg.search(conn, engine.rows.table, keyword_pg.phrases(query_chunks(text)), [], 5),
                          list)
