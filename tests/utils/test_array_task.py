"""SLURM array tasks map to a 0-based, contiguous (task index, task count), whatever the --array range."""

from __future__ import annotations

import pytest

from songbloom.utils.slurm import array_task


def test_arguments_win_over_the_environment():
    env = {"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_COUNT": "4"}
    assert array_task(1, 2, env) == (1, 2)
    assert array_task(None, None, {}) == (0, 1)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_COUNT": "4", "SLURM_ARRAY_TASK_MIN": "0"}, (3, 4)),
        ({"SLURM_ARRAY_TASK_ID": "8", "SLURM_ARRAY_TASK_COUNT": "8", "SLURM_ARRAY_TASK_MIN": "1"}, (7, 8)),
        (
            {"SLURM_ARRAY_TASK_ID": "12", "SLURM_ARRAY_TASK_COUNT": "4", "SLURM_ARRAY_TASK_MIN": "0",
             "SLURM_ARRAY_TASK_STEP": "4"},
            (3, 4),
        ),
        ({"SLURM_ARRAY_TASK_ID": "2", "SLURM_ARRAY_TASK_COUNT": "3"}, (2, 3)),  # no MIN: ids start at 0
    ],
)
def test_slurm_ranges_become_contiguous_indices(env, expected):
    assert array_task(None, None, env) == expected


def test_a_gap_in_the_array_is_refused_with_what_to_do():
    env = {"SLURM_ARRAY_TASK_ID": "7", "SLURM_ARRAY_TASK_COUNT": "3", "SLURM_ARRAY_TASK_MIN": "1"}
    with pytest.raises(ValueError, match="outside 0..2.*contiguous --array range"):
        array_task(None, None, env)
    with pytest.raises(ValueError, match="outside"):
        array_task(2, 2, {})
