"""Analysis of the latent space: embeddings, clusters, labels, sigma_phi fits, TLE scores."""
