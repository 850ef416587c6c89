"""Engines that turn chat messages into a stream of tokens.

``base.Backend`` is the one protocol; ``llama_cpp.LlamaCppBackend`` runs a GGUF in-process,
``openai.OpenAIBackend`` talks to an OpenAI-compatible server, ``fake.FakeBackend`` replays
scripted tokens for fast tests. ``factory.create_backend`` picks one from settings.
"""
