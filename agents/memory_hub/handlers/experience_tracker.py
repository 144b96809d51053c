"""ExperienceTracker: legacy-protocol.md §2.3 (7112; health 8112 from YAML; the code's 7113 is ResourceManager's).

Experiences are kept by the hub in SQL (agents/memory_hub/experiences.py); the legacy agent forwarded to a
missing EpisodicMemoryAgent and relayed its reply (see docs-repairs/ExperienceTracker.md).

Legacy port (JSON, flat fields):
  track_experience{content, importance_score=0.5, metadata={}, expires_at?(ISO-8601)}
      -> {status:"success", experience_id}
  get_experiences{limit=10} -> {status:"success", experiences:[{experience_id, content, memory_type:"experience",
      importance_score, metadata, created_at, expires_at}]}   newest first; times ISO-8601 UTC (expires_at may be null)
  ping | health | health_check -> the health reply below
  errors -> {status:"error", message}: "Missing content parameter", "Invalid <field> parameter",
            "Invalid request format", "Unknown action: X", "database is not available".
Health (legacy health port, any message; and the health actions above):
  {status:"ok", service:"ExperienceTracker", initialization_status:"complete", port:7112, health_port:8112, timestamp}

Native (agent "ExperienceTracker"; times are epoch seconds):
  track_experience{content, importance_score?, metadata?, expires_at?, exp_id?} -> {exp_id, content, memory_type,
      importance_score, metadata, created_at, expires_at}
  get_experiences{limit=10, min_importance?} -> {experiences:[...]}
  get_experience{exp_id} -> the experience (not_found when unknown or expired)    route GET /experience/{exp_id}
  put_experience{exp_id, content, ...} -> create or replace                        route PUT /experience/{exp_id}
  delete_experience{exp_id} -> {exp_id, deleted}                                   route DELETE /experience/{exp_id}
"""
from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from agents.memory_hub.experiences import ExperienceStore, iso, parse_time
from bus.errors import BadRequest, Unavailable
from bus.handler import CallContext, Handler, Route, action
from bus.legacy import LegacyCall, LegacyTable, LegacyVocabulary, message_error
from schemas.memory_hub import experience_tracker as schema


class ExperienceTracker(Handler):
    name = "ExperienceTracker"
    legacy_ports = (7112,)
    legacy_health_ports = (8112,)
    legacy_vocabulary = LegacyVocabulary()
    routes = (Route("GET", "/experience/{exp_id}", "get_experience"),
              Route("PUT", "/experience/{exp_id}", "put_experience"),
              Route("DELETE", "/experience/{exp_id}", "delete_experience"))

    def __init__(self, sql: Any = None):
        self.store = ExperienceStore(sql) if sql is not None else None
        self._started_at = time.time()

    def _store(self) -> ExperienceStore:
        if self.store is None:
            raise Unavailable("database is not available")
        return self.store

    def track(self, args: dict) -> dict[str, Any]:
        return self._store().track(args["content"], args["importance_score"], args["metadata"],
                                   parse_time(args["expires_at"]), args.get("exp_id"))

    # ------------------------------------------------------------------ native
    @action(schema.TRACK)
    def track_experience(self, args: dict, ctx: CallContext) -> dict:
        """Store an experience."""
        return self.track(args)

    @action(schema.GET_EXPERIENCES)
    def get_experiences(self, args: dict, ctx: CallContext) -> dict:
        """Live experiences, newest first."""
        return {"experiences": self._store().recent(args["limit"], args["min_importance"])}

    @action(schema.GET_EXPERIENCE)
    def get_experience(self, args: dict, ctx: CallContext) -> dict:
        """One experience."""
        return self._store().get(args["exp_id"])

    @action(schema.PUT_EXPERIENCE)
    def put_experience(self, args: dict, ctx: CallContext) -> dict:
        """Create or replace the experience with this id."""
        return self.track(args)

    @action(schema.DELETE_EXPERIENCE)
    def delete_experience(self, args: dict, ctx: CallContext) -> dict:
        """Delete one experience."""
        return {"exp_id": args["exp_id"], "deleted": self._store().delete(args["exp_id"])}

    # ------------------------------------------------------------------ legacy
    def legacy_table(self, call: LegacyCall) -> LegacyTable:
        def health(_request: dict) -> dict:
            return self._health(self.legacy_health_ports[0])

        return LegacyTable({"track_experience": self._legacy_track, "get_experiences": self._legacy_get,
                            "ping": health, "health": health, "health_check": health},
                           errors=((BadRequest, _legacy_bad_request),))

    def _legacy_track(self, req: dict) -> dict:
        if req.get("content") in (None, "", {}):
            return {"status": "error", "message": "Missing content parameter"}
        fields = {k: req[k] for k in ("content", "importance_score", "metadata", "expires_at")
                  if req.get(k) is not None}
        args = schema.TRACK.validate(fields)
        return {"status": "success", "experience_id": self.track(args)["exp_id"]}

    def _legacy_get(self, req: dict) -> dict:
        args = schema.GET_EXPERIENCES.validate({"limit": req["limit"]} if req.get("limit") is not None else {})
        return {"status": "success", "experiences": [_legacy_experience(e) for e in
                                                     self._store().recent(args["limit"])]}

    # ------------------------------------------------------------------ health
    def legacy_health(self, port: int) -> dict:
        return self._health(port)

    def _health(self, health_port: int) -> dict:
        return {"status": "ok", "service": "ExperienceTracker", "initialization_status": "complete",
                "port": self.legacy_ports[0], "health_port": health_port, "timestamp": datetime.now().isoformat()}


def _legacy_bad_request(err: BadRequest) -> dict:
    """A schema error names its field as "Invalid <field> parameter"; other bad requests keep their message."""
    field = err.details.get("field")
    return message_error(f"Invalid {field} parameter" if field else err.message)


def _legacy_experience(exp: dict[str, Any]) -> dict[str, Any]:
    return {"experience_id": exp["exp_id"], "content": exp["content"], "memory_type": exp["memory_type"],
            "importance_score": exp["importance_score"], "metadata": exp["metadata"],
            "created_at": iso(exp["created_at"]), "expires_at": iso(exp["expires_at"])}
