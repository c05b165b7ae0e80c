"""Benchmark reading a large events CSV with ``read_table`` (header search, rows that are not records,
several files) against the plain peer, ``pandas.read_csv(dtype=str)`` of the same file: wall time
(median of several runs) and the ratio.

    .venv/bin/python benchmarks/ingest_read.py [--rows 1000000] [--runs 3]

Two files are read: a plain export (header in row 1) and the same records as a ledger (a title and
a 填报 row above the header, an empty row, a 小计 row every 1,000 records, 合计 and 说明 at the end).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from sanling.pipeline.ingest.readers import read_table


def events_frame(n: int, seed: int = 0) -> pd.DataFrame:
    """``n`` events with Chinese headers, every cell text, as an export holds them."""
    rng = np.random.default_rng(seed)
    day = pd.Timestamp("2018-01-01") + pd.to_timedelta(rng.integers(0, 5 * 365, n), unit="D")
    cats = np.array(["矛盾纠纷", "信访", "治安案件", "刑事案件", "安全事故", "火灾", "风险隐患"])
    return pd.DataFrame(
        {
            "事件编号": [f"SX{k:09d}" for k in range(n)],
            "单位编码": [f"1410240{k:05d}" for k in rng.integers(0, 50_000, n)],
            "发生时间": day.strftime("%Y.%m.%d"),
            "事件类别": cats[rng.integers(0, len(cats), n)],
            "严重程度": rng.choice(["一般", "较大", ""], n),
            "是否越级": rng.choice(["是", "否"], n, p=[0.05, 0.95]),
            "伤亡人数": rng.choice(["0", ""], n),
            "化解时间": np.where(rng.random(n) < 0.7, (day + pd.Timedelta(days=3)).strftime("%Y.%m.%d"), ""),
        }
    )


def write_files(events: pd.DataFrame, folder: Path) -> tuple[Path, Path]:
    """(plain csv, ledger csv) of the same records."""
    plain = folder / "events.csv"
    events.to_csv(plain, index=False)
    ledger = folder / "events_ledger.csv"
    width = events.shape[1]
    blank = "," * (width - 1)
    lines = [
        "洪洞县矛盾纠纷排查化解工作台账",
        "填报单位：洪洞县综治中心" + "," * (width - 2) + ",填报日期：2022年12月31日",
    ]
    lines.append(",".join(events.columns))
    body = events.to_csv(index=False, header=False).splitlines()
    for start in range(0, len(body), 1000):
        lines.extend(body[start : start + 1000])
        lines.append("小计," + str(min(1000, len(body) - start)) + "件" + "," * (width - 2))
    lines[len(lines) // 2 : len(lines) // 2] = [blank]
    lines += ["合计," + f"{len(body)}件" + "," * (width - 2), "说明：本表由各乡镇每月5日前填报。"]
    ledger.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return plain, ledger


def median_seconds(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        plain, ledger = write_files(events_frame(args.rows), Path(tmp))
        warm = Path(tmp) / "warm"
        warm.mkdir()
        read_table("events", write_files(events_frame(1000), warm)[1])  # imports and caches first
        peer = median_seconds(lambda: pd.read_csv(plain, dtype=str, keep_default_na=False), args.runs)
        ours = median_seconds(lambda: read_table("events", plain), args.runs)
        kept = median_seconds(lambda: read_table("events", ledger), args.runs)
        raw = read_table("events", ledger)
    print(f"{args.rows:,} events, median of {args.runs} runs")
    print(f"  pandas.read_csv(dtype=str), plain file   {peer:6.2f} s")
    print(f"  read_table, plain file                    {ours:6.2f} s   {ours / peer:4.2f}× the peer")
    print(f"  read_table, ledger (title, 小计, 合计)    {kept:6.2f} s   {kept / peer:4.2f}× the peer")
    part = raw.parts[0]
    print(
        f"  ledger: header rows {part.header_rows}, records {part.records:,}, skipped "
        + ", ".join(f"{k} {len(v):,}" for k, v in part.skipped.items())
    )


if __name__ == "__main__":
    main()
