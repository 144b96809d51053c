"""Keyword search on PostgreSQL: ``memories.search_tsv`` (a generated ``tsvector`` with a GIN index, migration
``0005_postgres_search``), queried with ``websearch_to_tsquery('english', ...)`` and ranked by ``ts_rank_cd``.

The query text is cut into the same chunks as for FTS5 (``keyword.query_chunks``: stop words dropped,
at most 32, no control characters); each chunk becomes a quoted websearch phrase (``"ZX-4471"`` stays
the adjacent tokens of that code; ``-``, ``or`` and quotes inside a chunk are plain text) and the
phrases are OR-ed, as the FTS5 query is. ``websearch_to_tsquery`` accepts any text, so no user input
raises a syntax error. ``ts_rank_cd(..., 1)`` divides by 1 + log(document length), as BM25 normalises
length; it has no IDF, so the match budget (the rarest phrases first, ``keyword.affordable_phrases``)
also stands in for BM25's preference of rare terms. Where the two engines differ (stemmer, stop words
not indexed) is written in the README's "Scaling out" section.
"""
from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import Connection, Engine, Table, func, literal_column, select, text
from sqlalchemy.sql.elements import ColumnElement

from agents.memory_hub.search.filters import combine, live_clause

log = logging.getLogger(__name__)

COLUMN = "search_tsv"                  # keep in step with migration 0005_postgres_search
INDEX = "ix_memories_search_tsv"
CONFIG = literal_column("'english'::regconfig")
COUNT_CAP_FACTOR = 10                  # a phrase's document count is exact up to 10 x the match budget

_tsv = literal_column(f"memories.{COLUMN}")


def available(engine: Engine) -> bool:
    """True on PostgreSQL when ``memories.search_tsv`` exists (migration 0005_postgres_search ran)."""
    if engine.dialect.name != "postgresql":
        return False
    with engine.connect() as conn:
        return conn.execute(text("SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema() "
                                 "AND table_name = 'memories' AND column_name = :c"), {"c": COLUMN}).first() is not None


def check(engine: Engine) -> dict[str, Any]:
    """Is the GIN index there (without it every keyword query scans the table)?"""
    with engine.connect() as conn:
        index = conn.execute(text("SELECT 1 FROM pg_indexes WHERE schemaname = current_schema() "
                                  "AND tablename = 'memories' AND indexname = :i"), {"i": INDEX}).first() is not None
    if not index:
        log.error("GIN index %s is missing: PostgreSQL keyword search scans every memory", INDEX)
    return {"gin_index": index}


def phrases(chunks: list[str]) -> list[str]:
    """Quoted websearch phrases of the query chunks (quotes inside a chunk become spaces)."""
    quoted = ['"' + chunk.replace('"', " ").strip() + '"' for chunk in chunks]
    return [q for q in quoted if q != '""']


def counts(conn: Connection, phrase_list: list[str], budget: int) -> dict[str, int]:
    """Rows matching each phrase (each counted up to ``COUNT_CAP_FACTOR * budget + 1``), in one round trip."""
    cap = COUNT_CAP_FACTOR * budget + 1
    columns = []
    for i, phrase in enumerate(phrase_list):
        inner = (select(literal_column("1")).select_from(text("memories"))
                 .where(_tsv.op("@@")(func.websearch_to_tsquery(CONFIG, phrase))).limit(cap).subquery())
        columns.append(select(func.count()).select_from(inner).scalar_subquery().label(f"c{i}"))
    row = conn.execute(select(*columns)).one()
    return {phrase: int(n) for phrase, n in zip(phrase_list, row)}


def search(conn: Connection, memories: Table, phrase_list: list[str], clauses: list[ColumnElement],
           limit: int) -> list[tuple[str, float]]:
    """Up to ``limit`` ``(memory_id, rank)`` pairs of rows matching any phrase, best first."""
    if not phrase_list:
        return []
    query = func.websearch_to_tsquery(CONFIG, " or ".join(phrase_list))
    rank = func.ts_rank_cd(_tsv, query, 1)
    stmt = (select(memories.c.memory_id, rank.label("rank"))
            .where(_tsv.op("@@")(query))
            .where(combine([live_clause(memories), *clauses]))
            .order_by(rank.desc(), memories.c.memory_id).limit(limit))
    return [(memory_id, float(score)) for memory_id, score in conn.execute(stmt).all()]
