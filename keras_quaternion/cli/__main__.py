"""``python -m keras_quaternion.cli ...``: the ``kq`` command group."""

from keras_quaternion.cli import main

main(prog_name="kq")
