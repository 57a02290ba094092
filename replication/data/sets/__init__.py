"""The registered datasets, one module each (data/registry.py): a module here that defines `DATASET` is a dataset."""
