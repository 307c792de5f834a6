"""Data pipeline: manifests -> preprocessed WebDataset shards -> streaming training batches.

Import the submodules directly (``songbloom.data.preprocess``, ``songbloom.data.datamodule`` ...): this package
file stays empty so that reading a manifest does not import Lightning.
"""
