"""The simulated Shanxi world (docs/simulator.md): a registry of villages, communities and enterprises,
their monthly events from a documented conditional model, and the oracle ``truth.parquet``.
See docs/simulator.md."""

from sanling.pipeline.simulate.national import simulate_national
from sanling.pipeline.simulate.world import World, build_world, simulate_world, truth_frame

__all__ = ["World", "build_world", "simulate_national", "simulate_world", "truth_frame"]
