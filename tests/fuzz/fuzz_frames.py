"""atheris (libFuzzer) harness over the frame decoder and the schema of every action of both hubs.

    .venv/bin/python -m tests.fuzz.fuzz_frames -max_total_time=300 var/fuzz-corpus tests/fuzz/corpus/frames

libFuzzer reads every corpus directory given and writes the new inputs it finds into the first one (keep the
committed corpus second). A crash means ``tests.fuzz.targets.check_frame`` raised: the decoder or a schema let
an exception other than ``bad_request`` out, or broke a property; the input is saved as ``crash-*``.

The decoder (``bus.wire``) and the schema language (``schemas.base``) are instrumented for coverage; the
handlers are imported first, uninstrumented, only to read their action tables.
"""
from __future__ import annotations

import sys


def main(argv: list[str]) -> None:
    import atheris

    from tests.fuzz.targets import all_actions, check_frame
    all_actions()                                      # import both hubs' handlers before instrumenting
    import bus.wire
    import schemas.base
    for module in (bus.wire, schemas.base):
        for name in dir(module):
            fn = getattr(module, name)
            if callable(fn) and getattr(fn, "__module__", None) == module.__name__ and hasattr(fn, "__code__"):
                atheris.instrument_func(fn)
    for cls in (schemas.base.Schema,):
        for fn in vars(cls).values():
            if hasattr(fn, "__code__"):
                atheris.instrument_func(fn)

    def test_one_input(data: bytes) -> None:
        check_frame(data)

    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
