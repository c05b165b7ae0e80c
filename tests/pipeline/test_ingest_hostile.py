"""Hostile input at ingestion (issue 13): control characters are taken out, ``rejects.csv`` cannot
run formulas in a spreadsheet, and an Excel "zip bomb" is refused with one line."""

from __future__ import annotations

import zipfile

import pandas as pd
import pytest

from sanling.core.errors import DataError
from sanling.pipeline.ingest import grids, load_dataset

UNITS = {
    "unit_id": ["140105001001", "140105001002"],
    "unit_name": ["北格\x0b村\x07", "南城社区"],
    "unit_type": ["village", "community"],
    "township": ["北格镇\x0c", "坞城街道"],
    "county": ["小店区", "小店区"],
    "city": ["太原市", "太原市"],
}
EVENTS = {
    "event_id": ["E1", "E2", "E3"],
    "unit_id": ["140105001001", "140105001002", '=HYPERLINK("http://evil.example")'],
    "occurred_at": ["2021-03-05", "2021-03-06", "2021-03-07"],
    "category": ["dispute", "petition", "dispute"],
    "subtype": ["邻里\x0b纠纷", "", ""],
}


def _data(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    pd.DataFrame(UNITS).to_csv(data / "units.csv", index=False)
    pd.DataFrame(EVENTS).to_csv(data / "events.csv", index=False)
    return data


def test_control_characters_are_taken_out_at_ingestion(tmp_path):
    ds = load_dataset(_data(tmp_path), home=tmp_path / "home")
    assert list(ds.units["unit_name"]) == ["北格 村", "南城社区"]
    assert list(ds.units["township"]) == ["北格镇", "坞城街道"]
    assert ds.events.loc[ds.events["event_id"] == "E1", "subtype"].item() == "邻里 纠纷"


def test_rejects_csv_cannot_run_a_formula(tmp_path):
    ds = load_dataset(_data(tmp_path), home=tmp_path / "home")
    text = (ds.workdir / "rejects.csv").read_text(encoding="utf-8-sig")
    assert "evil.example" in text
    for line in text.splitlines():
        for cell in line.split(","):
            assert not cell.lstrip('"').startswith(("=", "+", "@")), line


def test_an_xlsx_that_would_unpack_too_large_is_refused(tmp_path, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    clean = {**UNITS, "unit_name": ["北格村", "南城社区"], "township": ["北格镇", "坞城街道"]}
    pd.DataFrame(clean).to_excel(data / "units.xlsx", index=False)
    pd.DataFrame(EVENTS).to_csv(data / "events.csv", index=False)
    with zipfile.ZipFile(data / "units.xlsx") as z:
        unpacked = sum(i.file_size for i in z.infolist())
    monkeypatch.setattr(grids, "MAX_UNZIPPED_BYTES", unpacked - 1)
    with pytest.raises(DataError, match=r"units\.xlsx: refused, the workbook would unpack to"):
        load_dataset(data, home=tmp_path / "home")
    monkeypatch.setattr(grids, "MAX_UNZIPPED_BYTES", unpacked)
    assert len(load_dataset(data, home=tmp_path / "home").units) == 2
