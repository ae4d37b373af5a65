"""Ultralytics' OpenVINO exports opened with a free batch dimension.

An export made without `dynamic=True` has the batch of 1 written into the shape patterns of
its reshapes (the detection head's `view(1, 64, -1)` and the like), so the model refuses a
batch of 4 even after its input is declared dynamic. Each reshape of data that flows from the
input gets its leading 1 replaced by 0, which OpenVINO's `special_zero` reads as "the batch
of the tensor coming in"; reshapes of weights (biases broadcast as (1, C, 1, 1)) keep theirs.
Every image's output is unchanged, bit for bit (tests/test_inference.py checks it).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def free_batch(model: Any) -> bool:
    """Make `model` (an openvino.Model, changed in place) take any batch. False where it
    cannot (a pattern computed at run time, an output that keeps a batch of 1): the model may
    then be half changed, and the caller reads it again to run it at its fixed batch."""
    import openvino as ov
    from openvino import opset13

    carried = _from_input(model)
    for op in model.get_ordered_ops():
        if op.get_type_name() != "Reshape" or op.input_value(0).get_node() not in carried:
            continue
        source = op.input_value(1).get_node()
        if source.get_type_name() != "Constant":
            return False
        pattern = np.array(source.get_data())
        if pattern.size == 0 or pattern[0] != 1:
            continue
        pattern[0] = 0
        op.input(1).replace_source_output(opset13.constant(pattern).output(0))
        op.set_special_zero(True)
    shape = model.inputs[0].partial_shape
    try:
        model.reshape({model.inputs[0]: ov.PartialShape([-1, *list(shape)[1:]])})
    except RuntimeError:
        return False
    return all(output.partial_shape[0].is_dynamic for output in model.outputs)


def _from_input(model: Any) -> set[Any]:
    """The nodes whose output depends on the model's input (and so carries its batch)."""
    carried: set[Any] = {parameter for parameter in model.get_parameters()}
    for op in model.get_ordered_ops():  # topological: producers before consumers
        if any(value.get_node() in carried for value in op.input_values()):
            carried.add(op)
    return carried
