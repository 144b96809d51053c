"""MemoryHub search: all-MiniLM-L6-v2 embeddings, a FAISS index, SQLite FTS5 BM25 and their fusion.

``SearchEngine`` (engine.py) is the entry point; ``DEFAULTS`` is the ``search`` settings section.
"""
from agents.memory_hub.search.embedder import Embedder
from agents.memory_hub.search.engine import SearchEngine
from agents.memory_hub.search.settings import DEFAULTS, SEARCH_DEFAULTS

__all__ = ["DEFAULTS", "SEARCH_DEFAULTS", "Embedder", "SearchEngine"]
