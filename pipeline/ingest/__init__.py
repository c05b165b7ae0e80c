"""Ingestion (docs/data-contract.md): a data directory of ``units`` and ``events`` (csv, xlsx or parquet;
UTF-8 or GBK; English or Chinese headers) → validated, normalised Parquet with the rejects set
aside and counted. Later stages call :func:`load_dataset`; ``sanling validate`` calls
:func:`validate_dir`."""

from sanling.pipeline.ingest.dataset import Dataset, load_dataset, validate_dir
from sanling.pipeline.ingest.report import IngestReport, TableReport

__all__ = ["Dataset", "IngestReport", "TableReport", "load_dataset", "validate_dir"]
