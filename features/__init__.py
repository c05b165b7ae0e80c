"""Point-in-time features and tier labels.

``features.panel.build_panel`` (events → units × months arrays), ``features.grid`` (the as-of grid),
``features.build.build_frame`` / ``feature_names`` (the feature frame), ``features.labels``
(``window_outcomes``, ``tiers_from_outcomes``, the safe rule evaluator) and ``features.registry``
(every feature declared once). This package never imports ``models`` or ``serving``.
"""
