"""Print the OpenAPI document the server serves: `python -m transferbot.http.export > docs/openapi.json`.

Apart from openapi.py, which the application imports, so that building the application to print its
document is not a circle."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from transferbot.app.context import open_app
from transferbot.config import parse_config
from transferbot.http import app as http_app
from transferbot.http.health import Readiness


def main() -> int:
    """Print the document the server serves (built on a throwaway database)."""
    with tempfile.TemporaryDirectory() as folder:
        config = parse_config({"database": {"url": f"sqlite:///{Path(folder) / 'openapi.db'}"}}, "openapi", env={})
        app = open_app(config, upgrade=True)
        try:
            document = http_app.create(app, Readiness()).openapi()
        finally:
            app.store.close()
    sys.stdout.write(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
