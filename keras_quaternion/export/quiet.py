"""Keep native libraries' own console notes out of the output of a successful export.

The TFLite converter prints ``fully_quantize: 0, inference_type: 6, ...`` and LiteRT prints
``INFO: Created TensorFlow Lite XNNPACK delegate for CPU.`` straight to file descriptor 2 from
C++, past Python's ``sys.stderr`` and past ``TF_CPP_MIN_LOG_LEVEL``. :func:`native_stderr_captured`
points descriptor 2 at a temporary file for the duration of a call: the notes are dropped when
the call succeeds and written out, after the error, when it fails, so nothing a user needs to
diagnose a failure is lost.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile


@contextlib.contextmanager
def native_stderr_captured():
    """Capture what anything in this process writes to file descriptor 2 inside the block.

    On success the text is dropped; if the block raises, it is written to ``sys.stderr`` and the
    exception propagates.

    Example:
        >>> import os
        >>> with native_stderr_captured():
        ...     _ = os.write(2, b"a native note\\n")   # not shown
    """
    sys.stderr.flush()
    saved = os.dup(2)
    failed = True
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
            failed = False
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            if failed:
                sink.seek(0)
                text = sink.read().decode("utf-8", errors="replace")
                if text:
                    sys.stderr.write(text)
                    sys.stderr.flush()
