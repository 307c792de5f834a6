"""Small cross-cutting helpers: rank-aware logging, SLURM job facts, distributed strategies."""
