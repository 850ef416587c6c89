"""Local documents: loaders, chunking, embeddings, the vector store, hybrid search, citations."""
