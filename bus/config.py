"""The settings sections every hub has (``hub``, ``legacy``, ``auth``, ``curve``, ``logging``, ``storage``).

Each section is a frozen dataclass (``bus.settings``) with its defaults and ranges; the sections of other bus
parts live next to the code that uses them (``bus.http.HttpSettings``, ``bus.events.EventsSettings``,
``bus.neighbours.NeighboursSettings``) and ``bus.daemon.CommonSettings`` holds them all. Values come from the
defaults, the YAML file, then the environment (``COMMON_ENV`` plus the hub's own map), checked once at load.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


from bus.settings import ConfigError, SettingError, setting

__all__ = ["COMMON_ENV", "AuthSection", "ConfigError", "CurveSection", "HubSection", "LegacyAgentSection",
           "LegacySection", "LoggingSection", "StorageSection", "port_offset"]

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


@dataclass(frozen=True)
class HubSection:
    host: str = "127.0.0.1"                  # bind address of the native, HTTP and events ports
    native_port: int = setting(0, minimum=0, maximum=65535)    # set by each hub
    http_port: int = setting(0, minimum=0, maximum=65535)
    events_port: int = setting(0, minimum=0, maximum=65535)
    workers: int = setting(8, minimum=1)     # worker threads for blocking handlers
    queue_limit: int = setting(2000, minimum=1)   # pending requests beyond which the reply is `busy`
    max_frame_bytes: int = setting(16 * 1024 * 1024, minimum=1024)
    default_deadline_ms: int = setting(60000, minimum=1)
    drain_timeout_s: float = setting(10.0, minimum=0.0)
    watchdog: bool = True
    idempotency_window_s: float = setting(86400.0, minimum=1.0)   # a repeated key answers its first result
    idempotency_running_s: float = setting(600.0, minimum=1.0)    # a key `running` longer is taken over

    def __post_init__(self) -> None:
        if self.idempotency_running_s > self.idempotency_window_s:
            raise SettingError("idempotency_running_s", "must not exceed idempotency_window_s")


@dataclass(frozen=True)
class LegacyAgentSection:
    """Per legacy agent: off, or other ports than the handler's (None = the handler's own)."""

    enabled: bool = True
    ports: tuple[int, ...] | None = None
    health_ports: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        for name in ("ports", "health_ports"):
            for port in getattr(self, name) or ():
                if not 0 < port <= 65535:
                    raise SettingError(name, f"ports must be in 1..65535, got {port}")


@dataclass(frozen=True)
class LegacySection:
    enabled: bool = True
    host: str = "127.0.0.1"          # the legacy agents bound *; PC2/MainPC host profiles set 0.0.0.0
    allow: tuple[str, ...] = ()      # peer IP allow-list for legacy ports (ZAP); empty = whoever reaches the bind
    agents: dict[str, LegacyAgentSection] = field(default_factory=dict)

    def agent_overrides(self) -> dict[str, dict[str, Any]]:
        """``agents`` as ``bus.legacy.resolve_legacy_ports`` reads them (unset ports left out)."""
        return {name: {key: value for key, value in (("enabled", agent.enabled), ("ports", agent.ports),
                                                     ("health_ports", agent.health_ports)) if value is not None}
                for name, agent in self.agents.items()}


@dataclass(frozen=True)
class AuthSection:
    required: bool = True
    algorithm: str = setting("HS256", choices=("HS256", "HS384", "HS512"))
    secret_file: str = ""            # default: <data_dir>/jwt.secret (mode 0600, created on first start)
    secret: str | None = None        # from env HUB_JWT_SECRET; never in YAML committed to git
    issuer: str = "voice-hubs"
    token_ttl_s: int = setting(86400, minimum=1)
    leeway_s: int = setting(5, minimum=0)
    audience: str = ""               # this hub's `aud` (default: the hub's name); tokens must name it or all-hubs
    mint_audiences: tuple[str, ...] = ()   # `aud` of tokens this hub mints (default: its own audience only)
    max_token_lifetime_s: int = setting(604800, minimum=1)   # longer-living tokens are refused; minted ones capped
    revocation_feeds: tuple[str, ...] = ()   # events endpoints of hubs whose `auth.revoked` events this hub obeys
    revocation_feed_server_key: str | None = None   # z85 public key when those events ports require CURVE


@dataclass(frozen=True)
class CurveSection:
    enabled: bool = False
    server_secret_key: str | None = None    # z85 strings; see README "Security"
    server_public_key: str | None = None
    allowed_client_keys: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.enabled and not self.has_server_keys():
            raise SettingError("enabled", "needs server_secret_key and server_public_key "
                                          "(generate with: hubctl curve-keys)")

    def has_server_keys(self) -> bool:
        return bool(self.server_secret_key and self.server_public_key)


@dataclass(frozen=True)
class LoggingSection:
    level: str = setting("info", choices=LOG_LEVELS + tuple(level.upper() for level in LOG_LEVELS))
    json: bool = True


@dataclass(frozen=True)
class StorageSection:
    data_dir: str = "./var"
    redis_url: str | None = None
    database_url: str | None = None


# environment variable -> settings path; applied after the YAML file
COMMON_ENV: dict[str, tuple[str, ...]] = {
    "HUB_DATA_DIR": ("storage", "data_dir"),
    "REDIS_URL": ("storage", "redis_url"),
    "DATABASE_URL": ("storage", "database_url"),
    "HUB_JWT_SECRET": ("auth", "secret"),
    "HUB_LOG_LEVEL": ("logging", "level"),
    "HUB_AUTH_REQUIRED": ("auth", "required"),
}


def port_offset(env: Mapping[str, str]) -> int:
    raw = env.get("PORT_OFFSET", "0") or "0"
    try:
        offset = int(raw)
    except ValueError:
        raise ConfigError(f"must be an integer, got {raw!r}", "PORT_OFFSET") from None
    if not 0 <= offset <= 50000:     # every shifted port (up to 9002 + offset) must stay a valid port
        raise ConfigError(f"must be between 0 and 50000, got {offset}", "PORT_OFFSET")
    return offset
