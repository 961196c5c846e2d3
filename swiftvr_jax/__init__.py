"""SwiftVR in JAX: real-time one-step generative video restoration."""
