"""Importers of the legacy agents' data into the hubs (``hubctl migrate ...``).

| source (legacy agent, host)                                  | command                          | hub               |
|--------------------------------------------------------------|----------------------------------|-------------------|
| ``unified_memory.db`` (MemoryOrchestratorService, PC2)       | ``migrate unified-memory PATH``  | MemoryHub         |
| ``agent_trust_scores.db`` (AgentTrustScorer, PC2)            | ``migrate trust-scores PATH``    | MemoryHub         |
| ``memory_store.json`` + ``error_patterns.json`` +            | ``migrate reasoning-json DIR``   | MemoryHub         |
| ``digital_twin_store.json`` (UnifiedMemoryReasoningAgent)    |                                  |                   |
| Redis db0 ``memory:*``, ``<type>:*`` (CacheManager, PC2)     | ``migrate cache-redis URL``      | MemoryHub (Redis) |
| ``model_evaluation.db`` (ModelEvaluationFramework, MainPC)   | ``migrate model-evaluation PATH``| ModelManagerSuite |

Every importer is idempotent (a second run changes nothing), has a ``--dry-run`` that counts without
writing, and reports each skipped row with its reason (see ``common.py``).
"""
