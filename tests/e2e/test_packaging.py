"""The wheel ships what the daemon needs at run time: templates and translation catalogs."""

from __future__ import annotations

from importlib import metadata

import pytest


def test_the_installed_distribution_ships_templates_and_catalogs() -> None:
    try:
        files = {str(f) for f in metadata.files("transferbot") or []}
    except metadata.PackageNotFoundError:
        pytest.skip("transferbot is not installed (run from a source tree)")
    if not any(f.startswith("transferbot/") and f.endswith(".py") for f in files):
        pytest.skip("an editable install: the source tree is used directly")
    for needed in ("transferbot/templates/mail/confirmation.j2", "transferbot/templates/mail/_layout_html.j2",
                   "transferbot/templates/certificate/certificate.html.j2",
                   "transferbot/locale/fr/LC_MESSAGES/messages.po", "transferbot/locale/de/LC_MESSAGES/messages.po",
                   # the dashboard (issue 12)
                   "transferbot/templates/ui/board.html", "transferbot/templates/ui/transfer.html",
                   "transferbot/http/ui/static/htmx.min.js", "transferbot/http/ui/static/ui.css",
                   "transferbot/store/migrations/env.py", "transferbot/store/migrations/script.py.mako",
                   "transferbot/store/migrations/versions/0001_release_0_1.py"):
        assert needed in files, needed
