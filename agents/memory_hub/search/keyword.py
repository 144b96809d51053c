"""Keyword search: BM25 over the SQLite FTS5 table ``memories_fts`` (migration 0002), ``ts_rank_cd`` over
PostgreSQL's ``memories.search_tsv`` (migration 0005_postgres_search, ``keyword_pg``), LIKE elsewhere.
``detect(engine)`` names the engine a database offers: ``fts5``, ``postgres`` or ``like`` (no full-text
index: logged as an error, since ranking then degrades to counting substring hits).

User text never reaches FTS5 syntax raw: ``fts_query`` splits it on whitespace, keeps the chunks that
hold a word character, doubles embedded quotes and wraps each chunk in quotes, so every chunk is an
FTS5 *phrase* (``ZX-4471`` stays the two adjacent tokens ``zx 4471``; ``AND``/``NEAR``/``*``/``:`` are
plain text) and phrases are OR-ed (BM25 ranks rows holding more, rarer terms first). Common English
stop words are dropped unless nothing else is left. Filters are applied in the same SQL statement.

Cost bound: BM25 is computed for every matching row, so when the query's phrases together match more
than ``match_budget`` rows, the most common phrases (lowest IDF) are left out of the OR (rarest first;
``affordable_phrases``). Rare tokens (codes, names), the reason keyword search exists, are always kept.
"""
from __future__ import annotations

import logging
import re
from typing import Any
from collections.abc import Callable

from sqlalchemy import Connection, Engine, Table, case, column, func, literal_column, or_, select, table, text
from sqlalchemy.sql.elements import ColumnElement

from agents.memory_hub.search import keyword_pg
from agents.memory_hub.search.filters import combine, live_clause

log = logging.getLogger(__name__)

FTS_TABLE = "memories_fts"
TRIGGERS = ("memories_fts_ai", "memories_fts_ad", "memories_fts_au")
MAX_TERMS = 32
_WORD = re.compile(r"\w", re.UNICODE)
_TOKENS = re.compile(r"\w+", re.UNICODE)
STOP_WORDS = frozenset(["a", "about", "above", "after", "again", "against", "all", "also", "am", "an", "and", "any",
                        "are", "as", "at", "be", "because", "been", "before", "being", "below", "between", "both",
                        "but", "by", "can", "could", "did", "do", "does", "doing", "down", "during", "each", "else",
                        "ever", "few", "for", "from", "further", "get", "got", "had", "has", "have", "having", "he",
                        "her", "here", "hers", "herself", "him", "himself", "his", "how", "i", "if", "in", "into",
                        "is", "it", "its", "itself", "just", "let", "me", "might", "more", "most", "must", "my",
                        "myself", "no", "nor", "not", "now", "of", "off", "on", "once", "only", "or", "other",
                        "ought", "our", "ours", "ourselves", "out", "over", "own", "please", "same", "shall", "she",
                        "should", "so", "some", "such", "than", "that", "the", "their", "theirs", "them",
                        "themselves", "then", "there", "these", "they", "this", "those", "through", "to", "too",
                        "under", "until", "up", "us", "very", "was", "we", "were", "what", "when", "where", "which",
                        "while", "who", "whom", "whose", "why", "will", "with", "would", "yet", "you", "your",
                        "yours", "yourself", "yourselves", "aren", "can't", "couldn", "didn", "doesn", "don", "hadn",
                        "hasn", "haven", "isn", "it's", "i'm", "i've", "i'd", "i'll", "let's", "mustn", "shan",
                        "shouldn", "that's", "there's", "they're", "wasn", "we're", "weren", "what's", "where's",
                        "who's", "won", "wouldn", "you're", "s", "t", "d", "ll", "m", "re", "ve"])

FTS5, POSTGRES, LIKE = "fts5", "postgres", "like"

_fts = table(FTS_TABLE, column("rowid"))


def query_chunks(text_in: str) -> list[str]:
    """The distinct whitespace-separated chunks of free text worth searching (see module docstring)."""
    text_in = "".join(ch if ch.isprintable() else " " for ch in text_in)   # NUL, surrogates, controls
    chunks = [chunk for chunk in text_in.split() if _WORD.search(chunk)]
    meaningful = [c for c in chunks if not _only_stop_words(c)]
    return list(dict.fromkeys((meaningful or chunks)[:MAX_TERMS]))


def fts_phrases(text_in: str) -> list[str]:
    """The quoted FTS5 phrases of free text (see module docstring); empty if it holds no searchable word."""
    return ['"' + chunk.replace('"', '""') + '"' for chunk in query_chunks(text_in)]


def fts_query(text_in: str) -> str | None:
    """A safe FTS5 MATCH expression for free text, or None if it holds no searchable word."""
    phrases = fts_phrases(text_in)
    return " OR ".join(phrases) if phrases else None


def like_terms(text_in: str) -> list[str]:
    """Distinct lower-case words for the LIKE fallback (stop words dropped unless nothing is left)."""
    words = [w.lower() for w in _TOKENS.findall(text_in)]
    meaningful = [w for w in words if w not in STOP_WORDS]
    return list(dict.fromkeys(meaningful or words))[:MAX_TERMS]


def detect(engine: Engine) -> str:
    """The keyword engine this database offers; no full-text index at all is logged as an error."""
    if fts_available(engine):
        return FTS5
    if keyword_pg.available(engine):
        return POSTGRES
    log.error("keyword search has no full-text index on this %s database (migrations not at head, or SQLite "
              "without FTS5): falling back to LIKE, keyword ranking degrades to counting word hits",
              engine.dialect.name)
    return LIKE


def check(engine: Engine, kind: str) -> dict[str, Any] | None:
    """Start-up check of the engine's full-text index (FTS5: verified and rebuilt if needed)."""
    if kind == FTS5:
        return check_fts(engine)
    if kind == POSTGRES:
        return keyword_pg.check(engine)
    return None


def fts_available(engine: Engine) -> bool:
    if engine.dialect.name != "sqlite":
        return False
    with engine.connect() as conn:
        found = conn.execute(text("SELECT 1 FROM sqlite_master WHERE type='table' AND name=:n"),
                             {"n": FTS_TABLE}).first()
    return found is not None


def check_fts(engine: Engine) -> dict[str, Any]:
    """Verify the FTS index against ``memories`` (and its triggers); rebuild it if they disagree."""
    with engine.execution_options(sqlite_begin="IMMEDIATE").begin() as conn:
        names = {r[0] for r in conn.execute(text("SELECT name FROM sqlite_master WHERE type='trigger'"))}
        missing = [t for t in TRIGGERS if t not in names]
        if missing:
            log.error("FTS triggers missing (%s): keyword search will miss new writes until migrated",
                      ", ".join(missing))
        ok = _integrity_ok(conn)
        if not ok:
            log.warning("memories_fts disagrees with memories; rebuilding it")
            conn.execute(text(f"INSERT INTO {FTS_TABLE}({FTS_TABLE}) VALUES ('rebuild')"))
    return {"consistent": ok, "rebuilt": not ok, "missing_triggers": missing}


def search(conn: Connection, memories: Table, query: str, clauses: list[ColumnElement], limit: int,
           kind: str, match_budget: int = 0) -> list[tuple[str, float]]:
    """Up to ``limit`` ``(memory_id, score)`` pairs, best first; higher score = better match.
    ``kind``: the engine ``detect`` named."""
    if kind == FTS5:
        return _search_fts(conn, memories, query, clauses, limit, match_budget)
    if kind == POSTGRES:
        phrases = affordable_phrases(conn, keyword_pg.phrases(query_chunks(query)), match_budget, keyword_pg.counts)
        return keyword_pg.search(conn, memories, phrases, clauses, limit)
    return _search_like(conn, memories, query, clauses, limit)


def affordable_phrases(conn: Connection, phrases: list[str], budget: int,
                       counts: Callable[[Connection, list[str], int], dict[str, int]] | None = None) -> list[str]:
    """Rarest phrases first while their summed document counts stay within ``budget`` (0 = all).

    BM25 is computed for every row matching any phrase, so a phrase found in half the table costs a lot
    and adds little (low IDF). Phrases matching nothing are dropped; the rarest one is always kept.
    ``counts(conn, phrases, budget)``: each phrase's document count (FTS5 by default).
    """
    if budget <= 0 or len(phrases) < 2:
        return phrases
    df = (counts or _fts5_counts)(conn, phrases, budget)
    chosen: list[str] = []
    total = 0
    for phrase in sorted((p for p in phrases if df[p]), key=df.__getitem__):
        if chosen and total + df[phrase] > budget:
            break
        chosen.append(phrase)
        total += df[phrase]
    return chosen


def _fts5_counts(conn: Connection, phrases: list[str], _budget: int) -> dict[str, int]:
    count = text(f"SELECT count(*) FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH :q")
    return {p: conn.execute(count, {"q": p}).scalar_one() for p in phrases}


def _search_fts(conn: Connection, memories: Table, query: str, clauses: list[ColumnElement],
                limit: int, match_budget: int) -> list[tuple[str, float]]:
    phrases = affordable_phrases(conn, fts_phrases(query), match_budget)
    if not phrases:
        return []
    rank = literal_column(f"bm25({FTS_TABLE})")
    stmt = (select(memories.c.memory_id, rank.label("rank"))
            .select_from(_fts.join(memories, literal_column("memories.rowid") == _fts.c.rowid))
            .where(literal_column(FTS_TABLE).op("MATCH")(" OR ".join(phrases)))
            .where(combine([live_clause(memories), *clauses]))
            .order_by(rank).limit(limit))
    return [(memory_id, -float(score)) for memory_id, score in conn.execute(stmt).all()]


def _search_like(conn: Connection, memories: Table, query: str, clauses: list[ColumnElement],
                 limit: int) -> list[tuple[str, float]]:
    terms = like_terms(query)
    if not terms:
        return []
    lowered = func.lower(memories.c.content)
    hits = [lowered.like(f"%{_escape(term)}%", escape="\\") for term in terms]
    score = _count_hits(hits)
    stmt = (select(memories.c.memory_id, score.label("score"))
            .where(combine([or_(*hits), live_clause(memories), *clauses]))
            .order_by(score.desc(), memories.c.importance.desc()).limit(limit))
    return [(memory_id, float(s)) for memory_id, s in conn.execute(stmt).all()]


def _count_hits(hits: list[ColumnElement]) -> ColumnElement:
    total: ColumnElement = case((hits[0], 1), else_=0)
    for hit in hits[1:]:
        total = total + case((hit, 1), else_=0)
    return total


def _escape(term: str) -> str:
    return term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _only_stop_words(chunk: str) -> bool:
    return all(w.lower() in STOP_WORDS for w in _TOKENS.findall(chunk))


def _integrity_ok(conn: Connection) -> bool:
    try:
        conn.execute(text(f"INSERT INTO {FTS_TABLE}({FTS_TABLE}, rank) VALUES ('integrity-check', 1)"))
        return True
    except Exception as exc:  # sqlite reports a mismatch as SQLITE_CORRUPT_VTAB
        log.warning("memories_fts integrity check failed: %s", exc)
        return False
