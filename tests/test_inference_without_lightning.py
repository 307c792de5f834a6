"""Loading an adapter-only training checkpoint and a PEFT adapter directory through the inference API
(``songbloom.checkpoints.load_checkpoint``) leaves Lightning out of ``sys.modules``: inference needs no training
stack. The premove fixtures (tests/fixtures/premove) are copied to tmp and loaded with ``base_path`` as in
tests/test_premove_fixtures.py, in a fresh interpreter so that nothing imported by other tests counts.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
PREMOVE = REPO_ROOT / "tests" / "fixtures" / "premove"

CODE = """
import json, sys, warnings
from pathlib import Path

from songbloom.checkpoints import load_checkpoint

root = Path(sys.argv[1])
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    adapter = load_checkpoint(root / "adapter_only.ckpt", base_path=root / "base_release")
    peft = load_checkpoint(root / "peft_adapter", base_path=root / "base_release")
print(json.dumps({
    "loaded": [type(adapter.model).__name__, type(peft.model).__name__],
    "lightning": sorted(m for m in sys.modules if m.split(".")[0] in ("lightning", "pytorch_lightning")),
}))
"""


def test_adapter_checkpoint_and_peft_adapter_load_without_lightning(tmp_path: Path):
    root = tmp_path / "premove"
    shutil.copytree(PREMOVE, root, ignore=shutil.ignore_patterns("*.py", "__pycache__", "run_dir"))
    proc = subprocess.run(
        [sys.executable, "-c", CODE, str(root)],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["loaded"] == ["SongBloomModel", "SongBloomModel"], result
    assert result["lightning"] == [], f"inference loading imported Lightning: {result['lightning'][:10]}"
