"""Neural network modules (NNX): the DiT and the ReAE autoencoder."""
