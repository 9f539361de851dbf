"""Package of the suite; modules here are discovered by the registry."""
