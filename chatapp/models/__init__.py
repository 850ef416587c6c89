"""Models: the bundled tiny model, the catalog, the local registry, Hugging Face downloads."""
