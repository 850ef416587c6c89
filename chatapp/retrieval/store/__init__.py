"""A collection on disk: its chunk vectors, one chromadb space per embedder (``vectors``), the
manifest of files and chunks with their keyword terms (``manifest``, SQLite), the BM25 index
rebuilt from those terms (``keywords``), and the lock that lets one writer in (``lock``)."""
