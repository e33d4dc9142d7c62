"""The ``transferbot`` command: ``main`` is its entry point; the parser and the commands are in ``commands``."""

from __future__ import annotations

from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; its exit code. Imported on call, so that importing the package costs nothing."""
    from transferbot.cli.commands import main as run

    return run(argv)
