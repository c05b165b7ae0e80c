"""The distributed engine: the same pipeline on a Dask cluster (``--dask local`` or
``--dask tcp://HOST:8786``, or ``SANLING_DASK``), with the same results.

The unit registry is cut into partitions of whole counties (or cities); each partition carries a
*halo* — the units its peer and neighbour features read — so every feature a worker computes equals
the single-process value (:mod:`.partitions`, :mod:`.features`). Scores and explanations are
computed per partition on the workers and written to the store in batches by the client
(:mod:`.scoring`); training and the backtest build their features on the workers and fit on the
client from a bounded sample of units (:mod:`.training`). Only this package imports Dask.
"""
