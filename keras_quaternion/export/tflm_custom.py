"""Run compact models on TFLite Micro's Python runtime with the quaternion operators registered.

Placeholder filled in below once the registration recipe is known.
"""


def custom_op_library():
    return None
