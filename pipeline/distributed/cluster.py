"""**Edge**: which Dask cluster a job runs on — a ``LocalCluster`` sized to this machine
(``local``) or an existing scheduler (``tcp://HOST:8786``) — and the client connected to it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from sanling.core.errors import ConfigError, SanlingError

LOCAL = "local"


def check_address(address: str) -> str:
    """``local`` or a scheduler address (``tcp://``, ``tls://``, ``ucx://``, ``inproc://``); raises
    :class:`ConfigError` for anything else."""
    address = address.strip()
    if address == LOCAL or address.split("://", 1)[0] in ("tcp", "tls", "ucx", "inproc"):
        return address
    raise ConfigError(
        f"--dask must be 'local' or a scheduler address such as tcp://HOST:8786, got {address!r}"
    )


def local_cluster_size(memory_fraction: float = 0.5) -> tuple[int, str]:
    """(workers, memory limit per worker) for a ``LocalCluster`` on this machine: one single-threaded
    worker per core, together at most ``memory_fraction`` of the memory (the machine may be shared)."""
    import psutil

    cores = max(os.cpu_count() or 1, 1)
    per_worker = int(psutil.virtual_memory().total * memory_fraction / cores)
    return cores, f"{per_worker // 2**20}MiB"


@contextmanager
def dask_client(address: str, *, n_workers: int | None = None, processes: bool = True) -> Iterator:
    """A ``distributed.Client`` on ``address`` for the duration of the block (a ``LocalCluster`` it
    started is closed again). ``n_workers`` / ``processes`` only shape a local cluster."""
    address = check_address(address)
    try:
        from distributed import Client, LocalCluster
    except ImportError:  # the optional extra is not installed
        raise SanlingError("the Dask engine needs the optional extra: pip install 'sanling[dask]'") from None
    if address == LOCAL:
        workers, memory = local_cluster_size()
        cluster = LocalCluster(
            n_workers=n_workers or workers,
            threads_per_worker=1,
            processes=processes,
            memory_limit=memory,
            dashboard_address=None,
        )
        client = Client(cluster)
        try:
            yield client
        finally:
            client.close()
            cluster.close()
        return
    try:
        client = Client(address, timeout="20s")
    except OSError as e:
        raise SanlingError(f"cannot reach the Dask scheduler at {address}: {e}") from None
    try:
        yield client
    finally:
        client.close()
