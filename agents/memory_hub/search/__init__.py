"""MemoryHub search: all-MiniLM-L6-v2 embeddings, a FAISS index, SQLite FTS5 BM25 and their fusion.

``SearchEngine`` (engine.py) is the entry point; ``SearchSettings`` (settings.py) is the ``search`` section.
"""
from agents.memory_hub.search.embedder import Embedder
from agents.memory_hub.search.engine import SearchEngine
from agents.memory_hub.search.settings import SearchSettings

__all__ = ["Embedder", "SearchEngine", "SearchSettings"]
