"""Model loader: load, unload, hot swap, LRU eviction with pinning and priorities, idle unload.

Every load/unload/swap holds the per-device lock file (``devlock``), so another process on the machine
sees a swap in progress and the resulting state. A load first estimates the model's memory
(``budget``); when it does not fit, idle unpinned models of equal or lower priority are evicted in LRU
order; when even that is not enough nothing is evicted and ``BudgetExceeded`` is raised. After the load
the real memory is measured and remembered per model (SQL).

GPU placement: a model asking for GPU layers goes to ``cuda:<NVML index of main_gpu>`` only in the effective
``gpu`` mode (``budget.device_for``); when its full offload does not fit the VRAM budget (free + evictable),
as many layers as fit are offloaded (``budget.layers_that_fit``) and the rest, with their KV cache, is charged
to the RAM budget; when no layer fits it loads on the CPU.

Hot swap keeps the old model serving until the new one is loaded (and warmed up), then switches in
one step and drains the old one. Events: ``model.loaded``, ``model.unloaded``, ``model.evicted``.
"""
from __future__ import annotations

import contextlib
import logging
import threading
import time
from pathlib import Path
from typing import Any
from collections.abc import Callable, Iterator

from bus.errors import Conflict, NotFound, Unavailable
from bus.periodic import PeriodicTask

from .budget import BudgetExceeded, Estimate, MemoryBudget, layers_that_fit, placement
from .models_settings import ModelsSettings
from .devlock import DeviceLock
from .loaded import LoadedModel, chat_format_for
from .registry import ModelRecord, ModelRegistry, ScanResult
from .store import ModelStore
from .worker import ModelWorker

log = logging.getLogger(__name__)


class ModelLoader:
    def __init__(self, registry: ModelRegistry, store: ModelStore, budget: MemoryBudget,
                 settings: ModelsSettings, *, data_dir: str | Path, publisher: Any = None,
                 clock: Callable[[], float] = time.monotonic):
        self.registry, self.store, self.budget = registry, store, budget
        self.publisher = publisher
        self.clock = clock
        self.data_dir = Path(data_dir)
        self.n_ctx, self.n_threads = settings.n_ctx, settings.n_threads
        self.n_gpu_layers, self.use_mmap = settings.n_gpu_layers, settings.use_mmap
        self.queue_limit, self.lock_timeout = settings.queue_limit, settings.lock_timeout_s
        self.idle_unload_s = settings.idle_unload_s
        self.reload_on_change = settings.reload_on_change
        self.aliases: dict[str, str] = dict(registry.load_policy)
        self._models: dict[str, LoadedModel] = {}
        self._lock = threading.RLock()
        self._device_locks: dict[str, DeviceLock] = {}
        self._idle_task = (PeriodicTask("model-idle-unload", settings.idle_check_interval_s, self.unload_idle)
                           if settings.idle_check_interval_s > 0 else None)
        registry.add_listener(self._on_registry_change)

    # -- names ----------------------------------------------------------------------------------
    def resolve(self, name: str) -> str:
        """Model id for an id, an alias (legacy load_policy model_pref) or a display name."""
        with self._lock:
            target = self.aliases.get(name)
        return target if target is not None else self.registry.resolve(name).id

    def set_alias(self, alias: str, model_id: str) -> None:
        self.registry.get(model_id)
        with self._lock:
            self.aliases[alias] = model_id

    def device_lock(self, device: str) -> DeviceLock:
        with self._lock:
            lock = self._device_locks.get(device)
            if lock is None:
                lock = self._device_locks[device] = DeviceLock(self.data_dir, device, self.lock_timeout)
            return lock

    # -- queries --------------------------------------------------------------------------------
    def is_loaded(self, name: str) -> bool:
        with self._lock:
            return self.resolve(name) in self._models

    def loaded(self) -> list[dict[str, Any]]:
        with self._lock:
            entries = list(self._models.values())
        return [self._info(e) for e in sorted(entries, key=lambda e: e.model_id)]

    def _info(self, entry: LoadedModel) -> dict[str, Any]:
        current = self._current(entry)
        return {**entry.info(), "pinned": current.pinned, "priority": current.priority}

    def _current(self, entry: LoadedModel) -> ModelRecord:
        """The registry's record of a loaded model (pinned/priority/config may have changed since load)."""
        try:
            return self.registry.get(entry.model_id)
        except NotFound:
            return entry.record

    def entry(self, name: str) -> LoadedModel | None:
        with self._lock:
            return self._models.get(self.resolve(name))

    def estimate(self, name: str, n_ctx: int | None = None) -> dict[str, Any]:
        record = self._valid_record(self.resolve(name))
        device, n_ctx_eff, _threads, layers = self._params(record, n_ctx)
        est = self.budget.estimate(record, n_ctx_eff, device, layers, self.store.get_model(record.id))
        free = self.budget.free_mb(device, self._reserved(device) + self.device_lock(device).others_reserved_mb())
        return {**est.to_dict(), "free_mb": round(free, 1), "fits": est.total_mb <= free,
                "loaded": self.is_loaded(record.id)}

    def status(self) -> dict[str, Any]:
        devices: dict[str, Any] = {}
        with self._lock:
            used = {e.device for e in self._models.values()} | {"cpu"} | set(self._device_locks)
        for device in sorted(used):
            lock = self.device_lock(device)
            reserved, others = self._reserved(device), lock.others_reserved_mb()
            devices[device] = {
                "capacity_mb": round(self.budget.capacity_mb(device), 1), "reserved_mb": round(reserved, 1),
                "other_processes_mb": round(others, 1),
                "free_mb": round(self.budget.free_mb(device, reserved + others), 1),
                "locked": lock.is_locked(), "holder": lock.holder(),
            }
        return {"mode": self.budget.gpu.mode, "reason": self.budget.gpu.reason,
                "offload_supported": self.budget.gpu.offload_supported, "devices": devices,
                "loaded": self.loaded(), "aliases": dict(self.aliases)}

    # -- load / unload --------------------------------------------------------------------------
    def load(self, name: str, *, n_ctx: int | None = None, pin: bool | None = None, priority: int | None = None,
             evict: bool = True, reason: str = "request") -> dict[str, Any]:
        """Load a model (no-op if loaded); ``evict=False`` refuses instead of evicting (preloads)."""
        model_id = self.resolve(name)
        if pin is not None:
            self.registry.set_pinned(model_id, pin)
        if priority is not None:
            self.registry.set_priority(model_id, priority)
        try:
            record = self._valid_record(model_id)
        except Exception as exc:
            self._report_load_failure(model_id, exc, reason)
            raise
        device, n_ctx_eff, threads, layers = self._params(record, n_ctx)
        with self.device_lock(device).hold("load", model=model_id, version=record.version):
            with self._lock:
                current = self._models.get(model_id)
                if current is not None:
                    current.last_used = self.clock()
                    return self._info(current)
            try:
                entry = self._start(record, device, n_ctx_eff, threads, layers, protect=set(), evict=evict,
                                    reason=reason)
            except Exception as exc:
                self._report_load_failure(model_id, exc, reason)
                raise
            with self._lock:
                self._models[model_id] = entry
            self._publish_state(device)
        return self._info(entry)

    def unload(self, name: str, *, reason: str = "request") -> bool:
        """Unload a model (queued requests finish first). False if it was not loaded."""
        model_id = self.resolve(name)
        with self._lock:
            entry = self._models.get(model_id)
        if entry is None:
            return False
        with self.device_lock(entry.device).hold("unload", model=model_id, version=entry.record.version):
            with self._lock:
                entry = self._models.pop(model_id, None)
            if entry is None:
                return False
            self._close(entry, reason, "model.unloaded")
            self._publish_state(entry.device)
        return True

    def unload_all(self, reason: str = "shutdown") -> list[str]:
        with self._lock:
            ids = list(self._models)
        return [mid for mid in ids if self.unload(mid, reason=reason)]

    def swap(self, target: str, new_model: str | None = None, *, n_ctx: int | None = None,
             warmup: Callable[[ModelWorker], None] | None = None) -> dict[str, Any]:
        """Hot swap. ``new_model`` None: reload ``target`` from its current file (new version).
        Otherwise load ``new_model``, repoint every alias of the old model (and ``target`` itself if it
        is an alias) to it, then unload the old one. The old model serves until the switch."""
        old_id = self.resolve(target)
        new_id = old_id if new_model is None else self.resolve(new_model)
        record = self._valid_record(new_id)
        device, n_ctx_eff, threads, layers = self._params(record, n_ctx)
        with self._lock:
            old_entry = self._models.get(old_id)
        devices = sorted({device} | ({old_entry.device} if old_entry else set()))
        with contextlib.ExitStack() as stack:
            for dev in devices:
                stack.enter_context(self.device_lock(dev).hold("swap", model=old_id, to=new_id,
                                                               version=record.version))
            result = self._swap_locked(target, old_id, new_id, record, device, n_ctx_eff, threads, layers, warmup)
            for dev in devices:
                self._publish_state(dev)
        return result

    def _swap_locked(self, target: str, old_id: str, new_id: str, record: ModelRecord, device: str, n_ctx: int,
                     threads: int, layers: int, warmup: Callable[[ModelWorker], None] | None) -> dict[str, Any]:
        with self._lock:
            old_entry = self._models.get(old_id)
            existing = self._models.get(new_id) if new_id != old_id else None
        entry = existing or self._start(record, device, n_ctx, threads, layers, protect={old_id}, evict=True,
                                        reason="swap")
        if warmup is not None:
            warmup(entry.worker)
        with self._lock:
            self._models[new_id] = entry
            repointed = [a for a, mid in self.aliases.items() if mid == old_id and new_id != old_id]
            for alias in repointed:
                self.aliases[alias] = new_id
            if target in self.aliases and target not in repointed and new_id != old_id:
                self.aliases[target] = new_id
                repointed.append(target)
            if new_id != old_id:
                self._models.pop(old_id, None)
        if old_entry is not None and old_entry is not entry:
            self._close(old_entry, "swapped", "model.unloaded")
        return {**self._info(entry), "previous": old_id,
                "previous_version": old_entry.record.version if old_entry else None, "aliases": sorted(repointed)}

    # -- leases (used by the inference engine) ------------------------------------------------
    @contextlib.contextmanager
    def lease(self, name: str, *, autoload: bool = True) -> Iterator[LoadedModel]:
        """Hold a loaded model for one request: it is not evicted or idle-unloaded meanwhile."""
        model_id = self.resolve(name)
        entry = None
        for _ in range(3):
            with self._lock:
                entry = self._models.get(model_id)
                if entry is not None:
                    entry.leases += 1
                    break
            if not autoload:
                raise Unavailable(f"model {model_id} is not loaded")
            self.load(model_id, reason="request")
        if entry is None:
            raise Unavailable(f"model {model_id} could not be kept loaded")
        try:
            yield entry
        finally:
            with self._lock:
                entry.leases -= 1
                entry.last_used = self.clock()

    # -- idle unload ----------------------------------------------------------------------------
    def unload_idle(self, now: float | None = None) -> list[str]:
        """Unload unpinned models unused for longer than their idle timeout; returns their ids."""
        now = self.clock() if now is None else now
        with self._lock:
            due = [e.model_id for e in self._models.values() if self._idle_due(e, now)]
        done = []
        for model_id in due:
            with self._lock:
                entry = self._models.get(model_id)
                if entry is None or not self._idle_due(entry, now):
                    continue
            if self.unload(model_id, reason="idle"):
                done.append(model_id)
        return done

    def _idle_due(self, entry: LoadedModel, now: float) -> bool:
        current = self._current(entry)
        timeout = current.config.get("idle_timeout_seconds") or self.idle_unload_s
        return (not current.pinned and entry.leases == 0 and entry.worker.idle and timeout > 0
                and now - entry.last_used >= timeout)

    def start(self) -> None:
        if self._idle_task is not None:
            self._idle_task.start()

    def stop(self) -> None:
        if self._idle_task is not None:
            self._idle_task.stop()
        self.unload_all("shutdown")

    # -- internals ------------------------------------------------------------------------------
    def _valid_record(self, model_id: str) -> ModelRecord:
        record = self.registry.get(model_id)
        if not record.valid:
            raise Conflict(f"model {model_id} is not loadable: {record.reason}")
        return record

    def _params(self, record: ModelRecord, n_ctx: int | None) -> tuple[str, int, int, int]:
        conf = record.config
        layers = int(conf.get("n_gpu_layers") if conf.get("n_gpu_layers") is not None else self.n_gpu_layers)
        device = self.budget.device_for(layers)
        wanted = int(n_ctx or conf.get("n_ctx") or self.n_ctx)
        if record.context_length:
            wanted = min(wanted, record.context_length)
        wanted = max(wanted, 16)
        threads = int(conf.get("n_threads") or self.n_threads)
        device, layers = self._fit_vram(record, device, wanted, layers) if device != "cpu" else ("cpu", 0)
        return device, wanted, max(threads, 1), layers

    def _fit_vram(self, record: ModelRecord, device: str, n_ctx: int, layers: int) -> tuple[str, int]:
        """Partial offload when the whole model does not fit the VRAM budget (free + evictable)."""
        blocks = record.header.block_count if record.header else None
        with self._lock:
            loaded = record.id in self._models
        if not blocks or loaded:      # load() returns a loaded model as it is; a reload asks for all layers again
            return device, layers
        wanted = blocks if layers < 0 else min(layers, blocks)
        est = self.budget.estimate(record, n_ctx, device, wanted, self.store.get_model(record.id))
        with self._lock:
            room = self.budget.free_mb(device, self._reserved(device) + self.device_lock(device).others_reserved_mb())
            room += sum(e.reserved_mb for e in self._eviction_candidates(device, record, set()))
        if est.total_mb <= room:
            return device, layers
        full = self.budget.estimate(record, n_ctx, device, -1)
        fit = min(wanted, layers_that_fit(room, full.weights_mb, full.kv_cache_mb, full.overhead_mb, blocks))
        if fit == 0:
            log.warning("model %s: no layer fits the %.0f MB left on %s; loading it on the CPU", record.id, room,
                        device)
            return "cpu", 0
        log.warning("model %s: needs %.0f MB on %s, %.0f MB left: partial offload of %d of %d layers, the rest "
                    "in RAM", record.id, est.total_mb, device, room, fit, blocks)
        return device, fit

    def _reserved(self, device: str) -> float:
        """MB this process holds on ``device``; RAM includes the CPU share of partially offloaded models."""
        with self._lock:
            total = sum(e.reserved_mb for e in self._models.values() if e.device == device)
            if device == "cpu":
                total += sum(e.estimate.ram_mb for e in self._models.values() if e.device != "cpu")
            return total

    def _start(self, record: ModelRecord, device: str, n_ctx: int, threads: int, layers: int, *,
               protect: set[str], evict: bool, reason: str) -> LoadedModel:
        """Make room, start a worker, measure; does not insert into the table."""
        measured_row = self.store.get_model(record.id)
        estimate = self.budget.estimate(record, n_ctx, device, layers, measured_row)
        self._make_room(record, estimate, device, protect, evict)
        self._check_ram_share(record, estimate)
        before = self.budget.snapshot(device)
        started = time.perf_counter()
        worker = ModelWorker(record.id, record.path, n_ctx=n_ctx, n_threads=threads, n_gpu_layers=layers,
                             main_gpu=self.budget.main_gpu, use_mmap=self.use_mmap, queue_limit=self.queue_limit,
                             version=record.version, chat_format=chat_format_for(record))
        try:
            worker.start()
        except Exception:
            self.store.add_stats(record.id, load_failures=1)
            raise
        load_s = time.perf_counter() - started
        measured = self.budget.used_since(device, before)
        try:
            self.store.update_model(record.id, estimated_memory_mb=estimate.total_mb, measured_memory_mb=measured,
                                    measured_version=record.version, measured_n_ctx=worker.n_ctx,
                                    measured_device=placement(device, layers, record.header),
                                    measured_at=time.time())
            self.store.add_stats(record.id, loads=1, total_load_s=load_s, last_load_s=load_s)
        except Exception:
            worker.close(drain=False)      # no untracked model left in memory
            raise
        entry = LoadedModel(record=record, worker=worker, device=device, n_ctx=worker.n_ctx, estimate=estimate,
                            reserved_mb=max(estimate.total_mb, measured), measured_mb=measured,
                            loaded_at=time.time(), load_s=load_s, last_used=self.clock())
        if measured > estimate.total_mb * 1.1:
            log.warning("model %s took %.0f MB on %s, %.0f MB were estimated: the budget now counts the measured "
                        "figure", record.id, measured, device, estimate.total_mb)
        self._emit("model.loaded", {"model_id": record.id, "version": record.version, "device": device,
                                    "n_ctx": worker.n_ctx, "load_s": round(load_s, 4),
                                    "memory_mb": round(measured, 1), "estimate_mb": round(estimate.total_mb, 1),
                                    "reason": reason})
        log.info("loaded model %s (%s) on %s in %.2f s", record.id, record.version, device, load_s)
        return entry

    def _make_room(self, record: ModelRecord, estimate: Estimate, device: str, protect: set[str],
                   evict: bool) -> None:
        others = self.device_lock(device).others_reserved_mb()
        with self._lock:
            free = self.budget.free_mb(device, self._reserved(device) + others)
            if estimate.total_mb <= free:
                return
            candidates = self._eviction_candidates(device, record, protect)
            evictable = sum(e.reserved_mb for e in candidates) if evict else 0.0
            if estimate.total_mb > free + evictable:
                raise BudgetExceeded(record.id, device, estimate.total_mb, free, self.budget.capacity_mb(device),
                                     evictable, note="" if evict else "preload does not evict")
            victims = []
            for entry in candidates:
                if estimate.total_mb <= free:
                    break
                victims.append(self._models.pop(entry.model_id))
                free += entry.reserved_mb
        for victim in victims:
            self._close(victim, "evicted", "model.evicted", for_model=record.id)

    def _eviction_candidates(self, device: str, record: ModelRecord, protect: set[str]) -> list[LoadedModel]:
        """Idle unpinned models on ``device`` of equal or lower priority, LRU first (call under ``_lock``)."""
        flags = {e.model_id: self._current(e) for e in self._models.values()}
        return sorted(
            (e for e in self._models.values()
             if e.device == device and e.model_id not in protect and e.model_id != record.id
             and not flags[e.model_id].pinned and e.leases == 0 and e.worker.idle
             and flags[e.model_id].priority <= record.priority),
            key=lambda e: (flags[e.model_id].priority, e.last_used))

    def _check_ram_share(self, record: ModelRecord, estimate: Estimate) -> None:
        """The RAM part of a partially offloaded model must fit the RAM budget (nothing is evicted for it)."""
        if not estimate.ram_mb:
            return
        free = self.budget.free_mb("cpu", self._reserved("cpu") + self.device_lock("cpu").others_reserved_mb())
        if estimate.ram_mb > free:
            raise BudgetExceeded(record.id, "cpu", estimate.ram_mb, free, self.budget.capacity_mb("cpu"),
                                 note="the layers left in RAM by a partial offload do not fit the RAM budget")

    def _close(self, entry: LoadedModel, reason: str, topic: str, **extra: Any) -> None:
        entry.worker.close(drain=True)
        fields = {"model_id": entry.model_id, "version": entry.record.version, "device": entry.device,
                  "reason": reason, "freed_mb": round(entry.reserved_mb, 1), **extra}
        self._emit(topic, fields)
        log.info("%s model %s (%s)", "evicted" if topic == "model.evicted" else "unloaded", entry.model_id, reason)

    def _publish_state(self, device: str) -> None:
        with self._lock:
            models = {e.model_id: {"version": e.record.version, "reserved_mb": e.reserved_mb,
                                   "loaded_at": e.loaded_at}
                      for e in self._models.values() if e.device == device}
            aliases = dict(self.aliases)
        self.device_lock(device).publish(models, aliases)

    def _report_load_failure(self, model_id: str, exc: Exception, reason: str) -> None:
        """A ``hub.error`` event, which the hub sends to the ErrorBus (a refused preload is only a warning)."""
        self._emit("hub.error", {"error_type": "model_load_failed", "agent": "ModelManagerAgent",
                                 "severity": "WARNING" if reason == "preload" else "ERROR",
                                 "message": f"{model_id}: {exc}"[:500],
                                 "details": {"model_id": model_id, "reason": reason}})

    def _emit(self, topic: str, fields: dict[str, Any]) -> None:
        if self.publisher is not None:
            try:
                self.publisher.publish(topic, fields)
            except Exception:
                log.exception("publishing %s failed", topic)

    def _on_registry_change(self, result: ScanResult) -> None:
        if not self.reload_on_change:
            return
        with self._lock:
            due = [mid for mid in result.changed if mid in self._models]
        for model_id in due:
            threading.Thread(target=self._reload_quietly, args=(model_id,), name=f"reload-{model_id}",
                             daemon=True).start()

    def _reload_quietly(self, model_id: str) -> None:
        try:
            record = self.registry.get(model_id)
            if record.valid:
                self.swap(model_id)
        except (NotFound, Conflict, Unavailable) as exc:
            log.warning("hot reload of %s after a file change failed: %s", model_id, exc)

