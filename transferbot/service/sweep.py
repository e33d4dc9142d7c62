"""The sweep: whatever is due at a moment, done once, one transaction per transfer."""

from __future__ import annotations

import logging
from datetime import datetime

from transferbot.service.app import App

log = logging.getLogger(__name__)


def sweep(app: App, now: datetime) -> int:
    """Do what is due at ``now``; returns how many transfers changed."""
    return 0
