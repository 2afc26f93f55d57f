"""OVMS's `pyovms` module for Python node handlers, so `from pyovms import Tensor` runs unchanged.

The Tensor is ovms_notebook's pure-Python rendering of OVMS's `pyovms.Tensor`
(ovms_notebook/calculators/pyovms_tensor.py documents it and its differences).
"""

from ovms_notebook.calculators.pyovms_tensor import Tensor

__all__ = ["Tensor"]
