"""Domain randomization: editable profiles (``randomization/*.yaml``), sampled per world and applied by the env."""
