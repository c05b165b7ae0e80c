"""Fitting, calibrating, deciding, evaluating and explaining the four-tier forecast."""

import os

# OpenMP threads (LightGBM, scikit-learn) spin-wait by default. On a shared 2-core machine that turns
# a 2-second fit into 25 seconds whenever another process runs (measured); sleeping waiters cost
# little when the machine is quiet. Set before lightgbm is first imported; an explicit setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
