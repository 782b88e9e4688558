"""Stage 00 (notebook ``00_data``): a dataset in the CityFlow-NL layout, generated (``lib.synthetic``) or brought
(a real release, checked by ``lib.cityflow.validate_dataset``), and its dataset card (``card``: tables,
histograms against the real annotations, sample frames, track strips)."""

from lib.cityflow import DatasetError, ValidationReport, validate_dataset
from lib.synthetic import prepare_data_root

__all__ = ["DatasetError", "ValidationReport", "prepare_data_root", "validate_dataset"]
