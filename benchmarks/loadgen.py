"""A small HTTP load generator for the benchmarks: closed loop (N concurrent clients, as fast as the
server answers) and open loop (a fixed arrival rate, latency measured from the scheduled send time
so a slow server cannot hide its queue). Loopback only."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

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


@dataclass
class LeanResult(Result):
    client_cpu_ms: float = float("nan")  # the generator's own CPU per request (user + system)


async def _closed_lean(base: str, make, concurrency: int, seconds: float, headers: dict) -> LeanResult:
    url = urlsplit(base)
    client = _Http(url.hostname, url.port, headers, max_connections=concurrency)
    # Open the connections before timing: TCP set-up is not what is measured.
    await asyncio.gather(*(_send(client, make(i)) for i in range(concurrency)))
    lat: list[float] = []
    errors = 0
    stop = time.perf_counter() + seconds

    async def worker(w: int) -> None:
        nonlocal errors
        i = w
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            errors += await _send(client, make(i)) >= 400
            lat.append((time.perf_counter() - t0) * 1000)
            i += concurrency

    cpu0 = _cpu_seconds()
    t0 = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    took = time.perf_counter() - t0
    cpu = _cpu_seconds() - cpu0
    return LeanResult(len(lat), errors, took, np.array(lat), cpu * 1000 / max(len(lat), 1))


def closed_loop_lean(
    base: str, make, *, concurrency: int = 8, seconds: float = 8.0, headers: dict | None = None
) -> LeanResult:
    """``concurrency`` clients sending one request after another as fast as the server answers, over the
    minimal keep-alive client (``make``: the request number → a GET target or (method, target, body)).
    On a 2-core machine the generator shares the cores with the server: its own CPU per request
    (``client_cpu_ms``) is a few tenths of a millisecond, against one or more with httpx, so a server
    that answers in well under a millisecond is not capped by its client."""
    return asyncio.run(_closed_lean(base, make, concurrency, seconds, headers or {}))


def open_loop_lean(base: str, make, *, rate: float, seconds: float, headers: dict | None = None) -> Result:
    """:func:`open_loop_mixed` with one kind of request, as a :class:`Result`."""
    timed, _pace = open_loop_mixed(base, {"one": make}, rate=rate, seconds=seconds, headers=headers)
    t = timed["one"]
    return Result(len(t.latencies_ms), t.errors, seconds, t.latencies_ms)


def open_loop(
    base: str, make: RequestFn, *, rate: float = 100.0, seconds: float = 10.0, headers: dict | None = None
) -> Result:
    return asyncio.run(_open(base, make, rate, seconds, headers or {}))


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_makers(ids: list[str], places: list[list[str]]) -> dict:
    """The two read requests of the load benchmarks, by request number: one unit's explained score,
    and a township's list of 50 (``places`` of ``[county, township]``)."""
    return {
        "GET unit": lambda i: f"/v1/units/{ids[(i * 7919) % len(ids)]}/risk",
        "GET township list of 50": lambda i: (
            "/v1/risk-list?"
            + urlencode(
                {"county": places[i % len(places)][0], "township": places[i % len(places)][1], "limit": 50}
            )
        ),
    }


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
    """Latencies of one request kind with the second (from the start) each was scheduled in, and how
    late the generator itself was: ``send_lag_ms`` is when the request was handed to a connection
    minus when it was scheduled (the generator's own delay, not the server's)."""

    latencies_ms: np.ndarray
    second: np.ndarray
    errors: int
    send_lag_ms: np.ndarray
    error_kinds: dict  # HTTP status or exception name → count
    at_s: np.ndarray  # each request's scheduled time, seconds from the start

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


@dataclass
class Pace:
    """How well the generator kept its schedule: the achieved send rate over the run, the lateness of
    its dispatches, and the CPU it used (seconds of CPU per second of wall time)."""

    target_rps: float
    sent: int
    achieved_rps: float
    lag_p50_ms: float
    lag_p99_ms: float
    lag_max_ms: float
    cpu_share: float

    @property
    def kept_up(self) -> bool:
        """Within 1 % of the target rate, and 99 % of the requests sent within 2 ms of their time."""
        return self.achieved_rps >= 0.99 * self.target_rps and self.lag_p99_ms <= 2.0


KEEP_ALIVE_S = 4.0  # uvicorn closes a keep-alive connection idle for 5 s


class _Http:
    """A minimal HTTP/1.1 keep-alive client over asyncio streams: GET only, ``Content-Length`` or
    chunked bodies. Much cheaper per request than a general client, so that on a small shared
    machine the generator keeps its schedule and its own CPU does not pass for server latency."""

    def __init__(self, host: str, port: int, headers: dict, max_connections: int):
        self.host, self.port = host, port
        self.extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.idle: list[tuple[float, asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.open = 0
        self.max = max_connections
        self.freed = asyncio.Condition()

    async def _take(self):
        async with self.freed:
            while not self.idle and self.open >= self.max:
                await self.freed.wait()
            while self.idle:
                used, reader, writer = self.idle.pop()
                if time.monotonic() - used < KEEP_ALIVE_S:
                    return reader, writer
                self.open -= 1  # the server may already have closed it: never send on a stale one
                writer.close()
            self.open += 1
        try:
            return await asyncio.open_connection(self.host, self.port)
        except BaseException:
            self.open -= 1
            raise

    async def _give(self, conn, ok: bool) -> None:
        async with self.freed:
            if ok:
                self.idle.append((time.monotonic(), *conn))
            else:
                self.open -= 1
                conn[1].close()
            self.freed.notify()

    async def get(self, target: str) -> int:
        """GET ``target`` (path and query, already encoded); returns the status code."""
        return await self.request("GET", target)

    async def request(self, method: str, target: str, body: bytes = b"") -> int:
        """``method`` ``target`` with a JSON ``body`` (if any); returns the status code."""
        conn = await self._take()
        ok = False
        try:
            reader, writer = conn
            head = f"{method} {target} HTTP/1.1\r\nHost: {self.host}\r\n{self.extra}"
            if body:
                head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            writer.write(head.encode() + b"\r\n" + body)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            lower = head.lower()
            at = lower.find(b"\r\ncontent-length:")
            if at >= 0:
                end = lower.index(b"\r\n", at + 2)
                await reader.readexactly(int(lower[at + 17 : end]))
            elif b"transfer-encoding: chunked" in lower:
                while True:
                    size = int((await reader.readline()).split(b";")[0], 16)
                    await reader.readexactly(size + 2)
                    if size == 0:
                        break
            ok = b"connection: close" not in lower
            return status
        finally:
            await self._give(conn, ok)


def _send(client: _Http, what) -> asyncio.Future:
    """A maker's request: a GET target, or (method, target, body)."""
    return client.get(what) if isinstance(what, str) else client.request(*what)


def _cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


async def _mixed(
    base: str, makers: dict, rate: float, seconds: float, headers: dict, timeout: float
) -> tuple[dict[str, Timed], Pace]:
    kinds = list(makers)
    lat: dict[str, list[float]] = {k: [] for k in kinds}
    sec: dict[str, list[int]] = {k: [] for k in kinds}
    lag: dict[str, list[float]] = {k: [] for k in kinds}
    at: dict[str, list[float]] = {k: [] for k in kinds}  # scheduled time, seconds from the start
    errors = dict.fromkeys(kinds, 0)
    what: dict[str, dict[str, int]] = {k: {} for k in kinds}  # status code or exception → count
    n = int(rate * seconds)
    url = urlsplit(base)
    client = _Http(url.hostname, url.port, headers, max_connections=256)
    # Open some connections before timing: TCP set-up is not what is measured.
    await asyncio.gather(*(_send(client, makers[kinds[i % len(kinds)]](i)) for i in range(32)))

    async def one(i: int, kind: str, scheduled: float) -> None:
        lag[kind].append((time.perf_counter() - scheduled) * 1000)
        try:
            status = await asyncio.wait_for(_send(client, makers[kind](i)), timeout)
            if status >= 400:
                errors[kind] += 1
                what[kind][str(status)] = what[kind].get(str(status), 0) + 1
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as e:
            errors[kind] += 1
            what[kind][type(e).__name__] = what[kind].get(type(e).__name__, 0) + 1
        lat[kind].append((time.perf_counter() - scheduled) * 1000)
        sec[kind].append(int(i / rate))
        at[kind].append(scheduled - start)

    tasks = set()
    cpu0 = _cpu_seconds()
    start = time.perf_counter() + 0.05
    for i in range(n):
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        t = asyncio.create_task(one(i, kinds[i % len(kinds)], scheduled))
        tasks.add(t)
        t.add_done_callback(tasks.discard)
    last_sent = time.perf_counter()
    cpu = _cpu_seconds() - cpu0
    while tasks:
        await asyncio.gather(*list(tasks))
    all_lag = np.concatenate([np.array(lag[k]) for k in kinds])
    pace = Pace(
        target_rps=rate,
        sent=n,
        # the n-th request is due at (n - 1) / rate after the first: n - 1 intervals were kept
        achieved_rps=(n - 1) / max(last_sent - start, 1e-9),
        lag_p50_ms=float(np.percentile(all_lag, 50)),
        lag_p99_ms=float(np.percentile(all_lag, 99)),
        lag_max_ms=float(all_lag.max()),
        cpu_share=cpu / max(last_sent - start, 1e-9),
    )
    timed = {
        k: Timed(np.array(lat[k]), np.array(sec[k]), errors[k], np.array(lag[k]), what[k], np.array(at[k]))
        for k in kinds
    }
    return timed, pace


def open_loop_mixed(
    base: str,
    makers: dict,
    *,
    rate: float,
    seconds: float,
    headers: dict | None = None,
    timeout: float = 30.0,
) -> tuple[dict[str, Timed], Pace]:
    """An open loop at ``rate`` requests per second, taking turns over ``makers`` (kind → a function of
    the request number returning the GET target, path and query). Each request is dispatched at its
    scheduled time whatever the server is doing (no coordinated omission: a stall shows up as the queue
    it causes), and its latency is counted from that scheduled time. Returns each kind's
    :class:`Timed` and the generator's :class:`Pace` — whether it kept its own schedule."""
    return asyncio.run(_mixed(base, makers, rate, seconds, headers or {}, timeout))


async def _sequential(base: str, target, n: int, headers: dict) -> tuple[list[float], int]:
    url = urlsplit(base)
    client = _Http(url.hostname, url.port, headers, max_connections=1)
    lat, errors = [], 0
    for i in range(n):
        t0 = time.perf_counter()
        errors += await _send(client, target(i)) >= 400
        lat.append((time.perf_counter() - t0) * 1000)
    return lat, errors


def sequential(base: str, target, n: int, headers: dict | None = None) -> tuple[np.ndarray, int]:
    """``n`` requests one after another on one keep-alive connection (``target``: the request number →
    a GET target or (method, target, body)); returns the latencies in ms and the error count."""
    lat, errors = asyncio.run(_sequential(base, target, n, headers or {}))
    return np.array(lat), errors
