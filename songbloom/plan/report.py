"""How a :class:`~songbloom.plan.estimate.MemoryPlan` is shown: a table, JSON, or the one line a run logs."""

from __future__ import annotations

import json

from songbloom.plan.estimate import MemoryPlan

CARDS_GB = (24, 48, 80)


def gb(n: float) -> str:
    return f"{n / 1e9:.2f} GB"


def table(plan: MemoryPlan) -> str:
    width = max(len(r.name) for r in plan.rows)
    lines = [
        f"memory plan: {plan.settings}",
        f"parameters: {plan.params_total / 1e6:.1f} M, trainable {plan.params_trainable / 1e6:.2f} M",
        "",
    ]
    for r in plan.rows:
        lines.append(f"  {r.name:<{width}}  {gb(r.bytes):>10}  {r.note}".rstrip())
    lines.append("")
    lines.append("  phases (allocated): " + ", ".join(f"{k} {gb(v)}" for k, v in plan.phases.items() if v))
    lines.append(f"  {'total per GPU':<{width}}  {gb(plan.total):>10}  " + fits_line(plan))
    return "\n".join(lines)


def fits_line(plan: MemoryPlan) -> str:
    return " ".join(f"{c} GB: {'fits' if plan.fits(c) else 'does NOT fit'};" for c in CARDS_GB).rstrip(";")


def as_json(plan: MemoryPlan) -> str:
    return json.dumps(plan.to_dict(), indent=1)


def one_line(plan: MemoryPlan) -> str:
    peak = max(plan.phases, key=lambda k: plan.phases[k])
    return (
        f"memory plan: {gb(plan.total)} peak per GPU (peak phase: {peak}; {plan.settings}); "
        f"{fits_line(plan)}; details: python -m songbloom.plan <the same overrides>"
    )
