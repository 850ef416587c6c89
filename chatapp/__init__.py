"""chatapp — a private chat assistant that runs entirely on your own machine.

Importing the package sets one process default before numpy loads its BLAS (every chatapp
module imports numpy after this file runs, and the indexer's reader process inherits it):
OpenBLAS's idle threads sleep at once instead of spinning for ~0.1 s after each matrix product
(``OPENBLAS_THREAD_TIMEOUT=4``, the library's shortest wait; a value the user set is kept).
USE multilingual's numpy pass (the one taken on CPUs without native bf16) alternates BLAS calls
with single-threaded numpy work, and the spinning second thread took a core from whatever else
ran: with one core busy beside it, as a reply being generated is, the 1 MB Korean folder
indexed in 52 s against 72 s (``benchmarks/retrieval_speed.py``, side by side; the README has
the figures); on a quiet machine the time is the same for 10-20 % less CPU. torch's OpenMP
threads are made passive where torch is loaded (``embedding.embedder``); llama.cpp's own threads
are not touched.
"""

import os

os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

__version__ = "0.1.0"
