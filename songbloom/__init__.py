"""songbloom: train, fine-tune and run SongBloom.

The model code (:mod:`songbloom.models`) is plain PyTorch; training lives in :mod:`songbloom.training`.
"""

__version__ = "0.1.0"
