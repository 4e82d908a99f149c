"""The sim-to-real gap checker: replay deploy logs in simulation, measure the gap, identify the arm, patch the randomization."""
