"""Small cross-cutting helpers: atomic writes, rank-aware logging, SLURM job facts, distributed strategies."""
