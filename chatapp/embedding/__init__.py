"""Sentence embedders shared by retrieval and prompting: MiniLM (bundled), its static
distillation, USE multilingual, a deterministic hashing embedder for tests, and the routing
that sends each text to the embedder (space) that reads its language (``auto``). Heavy
libraries (torch, sentence-transformers) load on first use."""
