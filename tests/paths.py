"""Where the suite's files are, whichever folder a test module sits in."""

from __future__ import annotations

from pathlib import Path

TESTS = Path(__file__).resolve().parent  # tests/: replies/, fixtures/, screenshots/
ROOT = TESTS.parent  # the checkout: transferbot/, docs/, config.example.toml, pyproject.toml
SHARED = ROOT.parent / "shared"  # the shared design and reply corpora, beside the checkout when present
