"""Native libraries' console notes: dropped when an export step succeeds, shown when it fails."""

import os

import pytest

from keras_quaternion.export.quiet import native_stderr_captured


def test_native_stderr_is_dropped_on_success_and_shown_on_failure(capfd):
    with native_stderr_captured():
        os.write(2, b"converter note\n")
    assert "converter note" not in capfd.readouterr().err
    with pytest.raises(RuntimeError), native_stderr_captured():
        os.write(2, b"native detail of the failure\n")
        raise RuntimeError("conversion failed")
    assert "native detail of the failure" in capfd.readouterr().err
    os.write(2, b"after the block\n")  # descriptor 2 is restored
    assert "after the block" in capfd.readouterr().err
