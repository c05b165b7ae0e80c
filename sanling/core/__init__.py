"""The ground floor of sanling: the typed configuration (:mod:`sanling.core.config`), the contract's
vocabulary — columns, categories, tiers, Chinese labels, colours (:mod:`sanling.core.vocabulary`),
the errors a user can act on (:mod:`sanling.core.errors`) and month arithmetic
(:mod:`sanling.core.months`). It imports nothing of the project; every other layer may import it.

``sanling`` itself is a namespace package: the folders ``pipeline/``, ``features/``, ``models/`` and
``serving/`` are mapped into it as ``sanling.pipeline`` … (see ``pyproject.toml`` and
``docs/architecture.md``)."""

__version__ = "0.2.0"
