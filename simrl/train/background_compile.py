"""Compile a jitted function on a thread while the caller goes on.

A training start compiles three programs: the env reset, the training
iteration and the evaluation. Compiled one after another they are most of the
time to a first result (on a GPU, over half of a one-minute run); XLA releases
the GIL while it compiles, so they can overlap.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

import jax


class BackgroundCompile:
    """``fn.lower(*args).compile()`` for ``args`` shaped like the given ones, started at once on its own thread.

    Only shapes and dtypes are kept, so the caller may donate or delete the
    arrays meanwhile. A jitted call of ``fn`` with such arguments after
    :meth:`wait` reuses this compilation (JAX caches lowerings and executables
    by computation); should compiling fail here, :meth:`wait` returns None and
    the caller's own call compiles again and raises in its own thread.
    """

    def __init__(self, fn: Any, *args: Any, name: str = "compile"):
        shapes = jax.eval_shape(lambda *a: a, *args)
        self.seconds: float | None = None  # how long the compilation took, once done
        self._compiled: Callable[..., Any] | None = None

        def compile_now() -> None:
            began = time.perf_counter()
            try:
                self._compiled = fn.lower(*shapes).compile()
            except Exception:  # noqa: BLE001 - the caller's own call reports it, with its traceback, where it belongs
                self._compiled = None
            self.seconds = time.perf_counter() - began

        self._thread = threading.Thread(target=compile_now, name=name, daemon=True)
        self._thread.start()

    def wait(self) -> Callable[..., Any] | None:
        """The compiled executable (None if compiling failed), once the thread is done."""
        self._thread.join()
        return self._compiled
