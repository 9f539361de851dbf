"""Imported once by the sweep's forkserver so every worker forks with torch, Lightning and all baselines loaded."""

from suite import registry

registry.load_all()
