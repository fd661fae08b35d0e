"""Data: benchmark loaders and writers, the synthetic scene world, training samples, task prompts."""
