"""The committed fuzz corpus replayed through the frame check, and a bounded atheris run over it.

* every file of tests/fuzz/corpus/frames satisfies ``check_frame`` (regenerate the seeds with
  ``python -m tests.fuzz.make_corpus`` after adding actions; libFuzzer finds go in the same directory);
* the smallest arguments of every current action of both hubs pass its schema (a schema whose required
  fields cannot all be satisfied would fail here);
* the atheris harness runs a bounded number of inputs without a crash (skipped when atheris is not
  installed: ``pip install atheris``).
"""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fuzz.make_corpus import DEFAULT_DIR, action_seeds, awkward_seeds
from tests.fuzz.targets import check_frame

REPO = Path(__file__).resolve().parents[2]
CORPUS_FILES = sorted(DEFAULT_DIR.glob("*"))


def test_corpus_is_committed():
    names = {path.name for path in CORPUS_FILES}
    assert len(names) > 200
    assert set(awkward_seeds()) <= names


@pytest.mark.parametrize("path", CORPUS_FILES, ids=[p.name for p in CORPUS_FILES])
def test_corpus_file_passes_the_frame_check(path):
    check_frame(path.read_bytes())


def test_every_current_action_accepts_its_smallest_arguments():
    refused = {name: outcome for name, data in action_seeds().items()
               if (outcome := check_frame(data)) != "valid"}
    assert refused == {}


@pytest.mark.slow
def test_atheris_harness_runs_clean(tmp_path):
    if importlib.util.find_spec("atheris") is None:
        pytest.skip("atheris is not installed in this environment (pip install atheris)")
    work = tmp_path / "found"
    work.mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "tests.fuzz.fuzz_frames", "-runs=100000", "-max_len=4096", "-max_total_time=60",
         f"-artifact_prefix={tmp_path}/", str(work), str(DEFAULT_DIR)],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    crashes = sorted(tmp_path.glob("crash-*"))
    assert result.returncode == 0 and not crashes, ([c.read_bytes()[:200] for c in crashes], result.stderr[-3000:])
    assert "Done" in result.stderr
