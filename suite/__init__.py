"""Reproducibility harness: task specs -> seeded runs -> records -> tables with CIs.

Importing ``suite`` pins the CPU kernels of torch, MKL, oneDNN, OpenBLAS and NumPy (``suite.numerics``) by
setting their environment variables, which only works before those libraries are imported: import ``suite``
first.  ``SUITE_NUMERICS=native`` turns pinning off.
"""

from suite import numerics as _numerics

__version__ = "0.1.0"

try:
    _numerics.apply()
except _numerics.NumericsError:
    pass  # an unknown SUITE_NUMERICS is reported in one line by the CLI and by every run
