"""Alternative executors for sweeps (the default local worker pool lives in suite.sweep)."""
