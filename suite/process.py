"""Setting up a process to run in: seeds, determinism, thread count, quiet logs, dying with its parent.

Shared by the sweep's workers (:mod:`suite.runner`) and the DDP ranks (:mod:`suite.distributed`), which must
set up identically for a run to give the same numbers either way; a module of its own so neither imports
the other for it.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import sys
import warnings


def seed_everything(seed: int, threads: int) -> None:
    """Seed Python, NumPy and torch, force deterministic kernels and a fixed thread count."""
    import numpy as np
    import torch

    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(threads)
    try:
        from lightning.fabric.utilities.seed import seed_everything as lightning_seed

        lightning_seed(seed, workers=True, verbose=False)
    except TypeError:  # older Lightning without `verbose`
        from lightning.fabric.utilities.seed import seed_everything as lightning_seed

        lightning_seed(seed, workers=True)


def quiet_lightning() -> None:
    """No per-run banners or per-step library warnings in sweep logs."""
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=r".*LeafSpec.*is deprecated")  # Lightning internals, once per step
    warnings.filterwarnings("ignore", message=r".*TF32 acceleration on top of oneDNN")  # torch, on every import
    warnings.filterwarnings("ignore", message=r".*MinAtar/.*-v0 is out of date")  # v0 = the paper's full action set


def set_parent_death_signal() -> None:
    """Ask Linux to SIGKILL this process when its parent dies (no orphans running on after a killed sweep)."""
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except OSError:
            pass
