"""A small HTTP load generator for the benchmarks: closed loop (N concurrent clients, as fast as the
server answers) and open loop (a fixed arrival rate, latency measured from the scheduled send time
so a slow server cannot hide its queue). Loopback only."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import numpy as np


@dataclass
class Result:
    n: int
    errors: int
    seconds: float
    latencies_ms: np.ndarray

    @property
    def rps(self) -> float:
        return self.n / self.seconds

    def pct(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if len(self.latencies_ms) else float("nan")


RequestFn = Callable[[httpx.AsyncClient, int], "asyncio.Future"]


async def _closed(base: str, make: RequestFn, concurrency: int, seconds: float, headers: dict) -> Result:
    lat: list[float] = []
    errors = 0
    stop = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=30) as client:

        async def worker(w: int) -> None:
            nonlocal errors
            i = w
            while time.perf_counter() < stop:
                t0 = time.perf_counter()
                r = await make(client, i)
                lat.append((time.perf_counter() - t0) * 1000)
                errors += r.status_code >= 400
                i += concurrency

        t0 = time.perf_counter()
        await asyncio.gather(*(worker(w) for w in range(concurrency)))
        took = time.perf_counter() - t0
    return Result(len(lat), errors, took, np.array(lat))


async def _open(base: str, make: RequestFn, rate: float, seconds: float, headers: dict) -> Result:
    lat: list[float] = []
    errors = 0
    n = int(rate * seconds)
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=30) as client:
        # Open the pool's connections before timing: TCP set-up is not what is measured.
        await asyncio.gather(*(make(client, i) for i in range(16)))
        start = time.perf_counter()

        async def one(i: int) -> None:
            nonlocal errors
            scheduled = start + i / rate
            await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
            r = await make(client, i)
            lat.append((time.perf_counter() - scheduled) * 1000)
            errors += r.status_code >= 400

        await asyncio.gather(*(one(i) for i in range(n)))
        took = time.perf_counter() - start
    return Result(len(lat), errors, took, np.array(lat))


def closed_loop(
    base: str, make: RequestFn, *, concurrency: int = 8, seconds: float = 8.0, headers: dict | None = None
) -> Result:
    return asyncio.run(_closed(base, make, concurrency, seconds, headers or {}))


def open_loop(
    base: str, make: RequestFn, *, rate: float = 100.0, seconds: float = 10.0, headers: dict | None = None
) -> Result:
    return asyncio.run(_open(base, make, rate, seconds, headers or {}))


def wait_up(url: str, timeout: float = 120.0) -> None:
    t0 = time.time()
    while time.time() - t0 < timeout:
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not come up in {timeout} s")


@dataclass
class Timed:
    """Latencies of one request kind with the second (from the start) each was scheduled in."""

    latencies_ms: np.ndarray
    second: np.ndarray
    errors: int

    def pct(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if len(self.latencies_ms) else float("nan")

    def worst_second(self) -> tuple[int, float]:
        """(second, its p99 in ms) of the second whose p99 was highest."""
        worst = (-1, float("nan"))
        for s in np.unique(self.second):
            p = float(np.percentile(self.latencies_ms[self.second == s], 99))
            if not worst[1] >= p:
                worst = (int(s), p)
        return worst


async def _mixed(base: str, makers: dict, rate: float, seconds: float, headers: dict) -> dict[str, Timed]:
    kinds = list(makers)
    lat: dict[str, list[float]] = {k: [] for k in kinds}
    sec: dict[str, list[int]] = {k: [] for k in kinds}
    errors = dict.fromkeys(kinds, 0)
    n = int(rate * seconds)
    limits = httpx.Limits(max_connections=128, max_keepalive_connections=128)
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=30) as client:
        await asyncio.gather(*(makers[kinds[i % len(kinds)]](client, i) for i in range(32)))
        start = time.perf_counter()

        async def one(i: int) -> None:
            kind = kinds[i % len(kinds)]
            scheduled = start + i / rate
            await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
            try:
                r = await makers[kind](client, i)
                errors[kind] += r.status_code >= 400
            except httpx.HTTPError:
                errors[kind] += 1
            lat[kind].append((time.perf_counter() - scheduled) * 1000)
            sec[kind].append(int(i / rate))

        await asyncio.gather(*(one(i) for i in range(n)))
    return {k: Timed(np.array(lat[k]), np.array(sec[k]), errors[k]) for k in kinds}


def open_loop_mixed(
    base: str, makers: dict, *, rate: float, seconds: float, headers: dict | None = None
) -> dict[str, Timed]:
    """An open loop at ``rate`` requests per second, taking turns over ``makers`` (kind → request);
    latency counted from each request's scheduled send time. Returns each kind's :class:`Timed`."""
    return asyncio.run(_mixed(base, makers, rate, seconds, headers or {}))
