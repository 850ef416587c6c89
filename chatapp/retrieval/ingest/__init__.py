"""Indexing a folder into a collection: discovery (which files, within which limits), loaders
and markup (a file's text as blocks with headings and line numbers), chunking, and the indexer,
whose reader (a thread, or a process for Kiwi-heavy folders) prepares files while the writer
embeds and stores them. Unchanged files are skipped by the manifest's hashes."""
