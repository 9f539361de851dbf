"""Reproducibility harness: task specs -> seeded runs -> records -> tables with CIs."""

__version__ = "0.1.0"
