"""The messages of checkpoint integrity and resume, in one place (docs/troubleshooting.md lists each with its fix).

Each is a ``str.format`` template; the code that raises or logs fills it in. Tests and the docs match on the
fixed phrases, so change a phrase here and in docs/troubleshooting.md together.
"""

from __future__ import annotations

DAMAGED_FILE = (
    "{path}: damaged file ({reason}); it was cut short (a full disk, a copy, download or save that was "
    "interrupted) or overwritten: copy or download it again from its source (compare its size and checksum with "
    "the original), or use another checkpoint"
)
"""A weights file that cannot be complete. ``reason``: what the integrity check found."""

NO_USABLE_CHECKPOINT = (
    "{ckpt_dir} holds {count} checkpoint(s) and none of them can be loaded, so this run is not started over "
    "silently (nothing was written or pruned):\n{listing}\n"
    "To continue from a checkpoint you trust, pass resume=<path to that .ckpt>. To start this run from step 0 "
    "instead, move the folder aside (mv {ckpt_dir} {ckpt_dir}.unreadable) and rerun, or pass resume=never "
    "(the files above are kept and never pruned; a step file of the same name is replaced when the new run "
    "reaches that step)"
)
"""Auto-resume found checkpoints in the run dir but every one failed its integrity check or its load."""

RESUME_FALLBACK = "resume: skipped {skipped}; resuming from {path} (step {step}), the newest intact checkpoint"
"""Auto-resume passed over damaged candidates (``skipped``: each path with its reason) and says which it used."""

RESUME_FILE_MISSING = "resume={path}: no such file; pass an existing .ckpt, resume=auto or resume=never"
"""An explicit ``resume=<file>`` that does not exist (checked before anything is written to the run dir)."""

FRESH_START_KEEPS_HISTORY = (
    "starting from step 0 although {ckpt_dir} holds checkpoints of earlier attempts ({names}): they are kept; "
    "this attempt prunes only the files it writes itself"
)
"""``resume=never`` (or a resume from elsewhere) in a run dir that already holds step checkpoints."""

INDEX_UNREADABLE = (
    "{path}: unreadable checkpoint index ({reason}); no earlier checkpoint will be pruned (delete old step "
    "files by hand if you need the space)"
)
"""``checkpoints/index.json`` (the list of files the run wrote, which pruning trusts) could not be read."""
