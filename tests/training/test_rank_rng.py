"""Checkpoints carry every DDP rank's RNG states and each rank restores its own; a world-size change reseeds.

The 2-rank part runs the real checkpoint hooks of the LightningModule in two gloo processes (CPU) and restores
from the file rank 0 wrote, loaded with ``weights_only=True`` as a resume does.
"""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path

import torch
import torch.multiprocessing as mp

from songbloom.training.lit_module import rng_state_for_rank


def _draws(lit) -> list[float]:
    """What the training step's random sources give next: torch (flow noise), python, condition dropout."""
    drop = lit.cond_dropout(4)
    return [
        *torch.rand(3).tolist(),
        random.random(),
        *[float(v) for k in sorted(drop) for v in drop[k]],
        *torch.rand(1, generator=lit.cond_dropout.cfg_gen).tolist(),
    ]


def _tiny_lit():
    from songbloom.config import SongBloomConfig
    from songbloom.models.songbloom import SongBloomModel
    from songbloom.training.lit_module import SongBloomLitModule, TrainSettings

    return SongBloomLitModule(SongBloomModel(SongBloomConfig.from_name("tiny").model), TrainSettings())


def _rank(rank: int, world: int, init_file: str, out_dir: str) -> None:
    import datetime

    import torch.distributed as dist

    dist.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world, timeout=datetime.timedelta(seconds=60)
    )
    try:
        lit = _tiny_lit()
        torch.manual_seed(100 + rank)  # rank-specific streams, as SongBloomLitModule.setup makes them under DDP
        random.seed(200 + rank)
        lit.cond_dropout.cfg_gen.manual_seed(300 + rank)
        checkpoint = {"state_dict": {f"model.{k}": v for k, v in lit.model.state_dict().items()}, "global_step": 7}
        lit.on_save_checkpoint(checkpoint)  # a collective: gathers every rank's states
        expected = _draws(lit)
        path = Path(out_dir) / "ckpt.pt"
        if rank == 0:
            torch.save(checkpoint, path)
        dist.barrier()
        torch.manual_seed(999)  # what a fresh process would have
        random.seed(999)
        lit.cond_dropout.cfg_gen.manual_seed(999)
        lit.on_load_checkpoint(torch.load(path, weights_only=True))
        lit._restore_rng(lit._pending_rng)
        got = _draws(lit)
        with open(Path(out_dir) / f"rank{rank}.json", "w") as f:
            json.dump({"expected": expected, "got": got}, f)
    finally:
        dist.destroy_process_group()


def test_two_ranks_restore_their_own_rng_states(tmp_path: Path):
    mp.spawn(_rank, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    res = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    for r in res:
        assert r["got"] == r["expected"]
    assert res[0]["expected"] != res[1]["expected"]  # the ranks' streams differ: restoring rank 0's would fail
    ckpt = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    assert len(ckpt["songbloom_rng_ranks"]) == 2


def test_world_size_change_warns_and_reseeds_deterministically(caplog):
    states = [{"torch": torch.manual_seed(s).get_state()} for s in (1, 2)]
    ckpt = {"songbloom_rng_ranks": states, "global_step": 5}
    assert rng_state_for_rank(ckpt, 1, 2) is states[1]
    with caplog.at_level(logging.WARNING):
        seeds = [rng_state_for_rank(ckpt, r, 4) for r in range(4)]
    assert "this run has 4" in caplog.text
    assert all(set(s) == {"reseed"} for s in seeds)
    assert len({s["reseed"] for s in seeds}) == 4  # one stream per rank
    assert seeds == [rng_state_for_rank(ckpt, r, 4) for r in range(4)]  # the same resume reseeds the same way
    assert rng_state_for_rank({**ckpt, "global_step": 6}, 0, 4) != seeds[0]
    # A checkpoint from before per-rank states: its single state serves one rank, several ranks reseed.
    old = {"songbloom_rng": states[0], "global_step": 5}
    assert rng_state_for_rank(old, 0, 1) is states[0]
    assert "reseed" in rng_state_for_rank(old, 1, 2)


def test_reseed_restores_every_stream():
    lit = _tiny_lit()
    lit._restore_rng({"reseed": 1234})
    first = _draws(lit)
    lit._restore_rng({"reseed": 1234})
    assert _draws(lit) == first
