"""`transferbot demo`, the README's first command, runs the whole story and ends with completion."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_demo_runs_the_whole_story(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "transferbot", "demo"], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "out-of-office reply: recorded as auto-reply, not a decision" in out
    assert out.count(": approved") == 4
    assert "is completed: ent-1001 now goes through tailspin" in out
    assert out.count("completed") >= 4
    assert "entitlement-moved" in out
    sent = int(out.split("in the sink: ")[1].split()[0])
    assert f"{sent} messages, {sent} of them DKIM-signed for transfers.demo.example and verified" in out
    assert list(tmp_path.iterdir()) == [], "the demo leaves nothing behind"
