"""Training: losses, sharded stage steps and the run loop."""
