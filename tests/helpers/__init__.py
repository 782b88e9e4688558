"""Test helpers: small datasets, configurations and embeddings built on the fly (no test lives here)."""
