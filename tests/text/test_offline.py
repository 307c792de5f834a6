"""G2P for every language must run with no network at all (g2p_en and NLTK like to download)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

# Runs in a fresh interpreter so the guard is in place before any G2P library is imported.
GUARDED_SCRIPT = r"""
import json, socket
attempts = []
def refuse(*args, **kwargs):
    attempts.append(repr(args[1:] if args else kwargs))
    raise OSError("network access attempted during G2P")
socket.socket.connect = refuse
socket.socket.connect_ex = refuse
socket.create_connection = refuse
socket.getaddrinfo = refuse
import nltk
def no_download(*args, **kwargs):
    attempts.append("nltk.download" + repr(args))
    raise OSError("nltk.download attempted")
nltk.download = no_download
from songbloom.text import LyricG2P
g2p = LyricG2P()
out = {
    "zh": g2p("我爱你"),
    "en": g2p("hello glimmerbloomz"),
    "ja": g2p("桜の花"),
    "mixed": g2p("[verse] 今天是Friday night"),
}
print(json.dumps({"out": out, "attempts": attempts}, ensure_ascii=False))
"""


def test_g2p_is_offline():
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run(
        [sys.executable, "-c", GUARDED_SCRIPT], capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["attempts"] == []
    assert result["out"]["zh"] == "w o3 AA ai4 n i3"
    assert result["out"]["ja"] == "s a k u r a n o h a n a"
    assert result["out"]["en"].startswith("HH AH0 L OW1 ")
    assert result["out"]["mixed"].startswith("[verse] j in1 t ian1 sh ir4 F R AY1 D IY0")
