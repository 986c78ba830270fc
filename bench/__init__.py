"""Load benchmark of the contract-first server against code-first baselines (`make bench`)."""
