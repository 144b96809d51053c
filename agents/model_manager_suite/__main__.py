"""`model-manager-suite` / `python -m agents.model_manager_suite`: run ModelManagerSuite."""
from __future__ import annotations

import sys

from bus.daemon import main as run_daemon


def main(argv: list[str] | None = None) -> int:
    from agents.model_manager_suite.hub import SPEC
    return run_daemon(SPEC, argv)


if __name__ == "__main__":
    sys.exit(main())
