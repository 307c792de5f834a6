"""The memory plan: peak GPU memory of a training run before the first GPU hour (``python -m songbloom.plan``).

:func:`estimate` takes a typed run config and returns a :class:`MemoryPlan` (rows, phases, total per GPU);
:mod:`songbloom.plan.estimate` documents the formula, :mod:`songbloom.plan.probe` how activations are measured.
"""

from songbloom.plan.estimate import MemoryPlan, Row, estimate

__all__ = ["MemoryPlan", "Row", "estimate"]
