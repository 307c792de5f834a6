"""Plain ``nn.Module`` building blocks of SongBloom. Nothing here imports Lightning, Hydra or W&B."""
