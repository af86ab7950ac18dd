"""The op library, by family.  Importing this package registers every op and gives Tensor's
operators their functions (:func:`graphc.ir.tensor.bind_op_library`)."""

import sys

from graphc.ir.build import constant
from graphc.ir.tensor import bind_op_library
from graphc.ops import kernel as _kernel  # noqa: F401  (registers the fused-kernel ops)
from graphc.ops.conv import *  # noqa: F403
from graphc.ops.conv import __all__ as _conv
from graphc.ops.elementwise import *  # noqa: F403
from graphc.ops.elementwise import __all__ as _elementwise
from graphc.ops.indexing import getitem
from graphc.ops.like import ones_like, zeros_like
from graphc.ops.linalg import matmul
from graphc.ops.nn import *  # noqa: F403
from graphc.ops.nn import __all__ as _nn
from graphc.ops.reduce import *  # noqa: F403
from graphc.ops.reduce import __all__ as _reduce
from graphc.ops.shape import *  # noqa: F403
from graphc.ops.shape import __all__ as _shape
from graphc.ops.state import Variable, assign, assign_add, group, placeholder

__all__ = [
    *_conv, *_elementwise, *_nn, *_reduce, *_shape,
    "Variable", "assign", "assign_add", "constant", "getitem", "group", "matmul", "ones_like", "placeholder",
    "zeros_like",
]

bind_op_library(sys.modules[__name__])
