"""chatapp — a private chat assistant that runs entirely on your own machine.

Importing the package sets one process default before numpy loads its BLAS (every chatapp
module imports numpy after this file runs, and the indexer's reader process inherits it):
OpenBLAS's idle threads sleep at once instead of spinning for ~0.1 s after each matrix product
(``OPENBLAS_THREAD_TIMEOUT=4``, the library's shortest wait). USE multilingual's numpy pass
alternates BLAS calls with single-threaded numpy work, and the spinning second thread took a
core from whatever else ran: with one core busy beside it (a reply being generated, another
program), indexing the 1 MB Korean folder took 58.4 / 60.5 s, and 46.0 / 44.8 s with the
threads sleeping (78.8 / 80.6 CPU s against 59.0); on an idle machine the time is the same
(23.1 / 29.2 / 23.3 s against 23.1 / 26.6 / 22.3 s, alternated) for ~15 % less CPU. A value the
user set is kept. torch's OpenMP threads get the same treatment where torch is loaded
(``retrieval.embedder``); llama.cpp's own threads are not touched.
"""

import os

os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

__version__ = "0.1.0"
