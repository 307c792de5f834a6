"""A re-run of a finished run: nothing to do.

``finish`` marks ``summary.json`` complete once training, the export and the demo song are written. The same
command run again (same run dir, same config) then returns that summary without building the model, opening a
W&B run or exporting again. A changed config (``allow_config_change=true``), an explicit ``resume=<file>`` /
``ckpt_path=`` or ``resume=never``, or a file listed in the summary that is gone means work is left, and the
run goes ahead (resuming its W&B run by the id in ``wandb_id.txt``).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from songbloom.config.run import RunConfig
from songbloom.training.run_dir import CONFIG_FILE, identity_config

logger = logging.getLogger(__name__)

SUMMARY_FILE = "summary.json"
COMPLETE_KEY = "complete"


def _outputs_present(summary: dict[str, Any]) -> bool:
    paths = [v for k, v in summary.items() if (k.startswith("export_") or k == "song") and isinstance(v, str)]
    return all(Path(p).exists() for p in paths)


def completed_summary(rc: RunConfig, c: dict[str, Any], run_dir: Path) -> dict[str, Any] | None:
    """The stored summary when ``run_dir`` holds a complete run of this very config, else None."""
    if rc.resume != "auto" or rc.ckpt_path:
        return None
    summary_path, config_path = run_dir / SUMMARY_FILE, run_dir / CONFIG_FILE
    if not (summary_path.is_file() and config_path.is_file()):
        return None
    try:
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
        stored = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    same_config = identity_config(stored) == identity_config(json.loads(json.dumps(c, default=str)))
    if not (summary.get(COMPLETE_KEY) and same_config and _outputs_present(summary)):
        return None
    logger.info("%s already finished with this config (%s): nothing left to do", run_dir, summary_path)
    return summary
