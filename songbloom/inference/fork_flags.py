"""The fork's ``infer.py --use-lora --lora-*`` flags: accepted, and answered with where the settings come from."""

from __future__ import annotations

import argparse
import logging

logger = logging.getLogger(__name__)

FORK_LORA_FLAGS = ("use_lora", "lora_rank", "lora_alpha", "lora_dropout", "lora_target_modules")


def fork_flag_notice(args: argparse.Namespace) -> str | None:
    """Log (and return) one notice when any fork LoRA flag was given; None when none was."""
    given = [
        f"--{name.replace('_', '-')}" for name in FORK_LORA_FLAGS if getattr(args, name, None) not in (None, False)
    ]
    if not given:
        return None
    notice = (
        f"{', '.join(given)}: accepted for compatibility with the fork's infer.py, but no longer needed. The LoRA "
        "targets and rank are read from the checkpoint itself and the adapters are merged into the base weights "
        "(see the <ckpt>.mapping.json report); --lora-dropout does nothing at inference."
    )
    if getattr(args, "lora_alpha", None) is not None:
        notice += f" --lora-alpha {args.lora_alpha:g} is used as the fork LoRA scale (alpha / rank), which the fork's "
        notice += "checkpoints do not store."
    else:
        notice += " The fork's LoRA alpha is not stored in its checkpoints; its default 32 is assumed."
    logger.warning("%s", notice)
    return notice
