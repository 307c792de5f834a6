#!/usr/bin/env python
"""Encode songs into WebDataset shards (see ``songbloom.data.preprocess`` and docs/data.md).

Example (SLURM array of 8 tasks, each with 2 encoding processes):
    sbatch --array=0-7 --wrap "python scripts/preprocess.py data/songs.jsonl --out data/shards \
        --vae-config stable_audio_1920_vae.json --vae-ckpt autoencoder_music_dsp1920.ckpt --codebook vq.pt --workers 2"
"""

from songbloom.cli.preprocess import main

if __name__ == "__main__":
    raise SystemExit(main())
