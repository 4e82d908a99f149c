"""Compile a jitted function on a thread while the caller goes on.

Used for the evaluation, whose compilation would otherwise stop training at
the first evaluation (on an H200, 15 s of a one-minute run; XLA releases the
GIL while it compiles). Not for the training iteration: compiling it beside
the reset and the evaluation made the first evaluation of a GPU run come 7-12 s
later (compilation 41 s against 32 s), and gained 0.3 s on two CPU cores.
"""

from __future__ import annotations

import threading
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
        self._compiled: Callable[..., Any] | None = None

        def compile_now() -> None:
            try:
                self._compiled = fn.lower(*shapes).compile()
            except Exception:  # noqa: BLE001 - left as None: the caller's own call reports it, with its traceback, where it belongs
                pass

        self._thread = threading.Thread(target=compile_now, name=name, daemon=True)
        self._thread.start()

    def wait(self) -> Callable[..., Any] | None:
        """The compiled executable (None if compiling failed), once the thread is done."""
        self._thread.join()
        return self._compiled
