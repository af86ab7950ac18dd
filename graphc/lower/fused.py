"""Lowering of fused kernels: a whole inner graph as one loop kernel.

The elementwise outputs of one shape are stored from one loop nest (each a scalar expression of the
kernel's inputs); a reduction output folds the elementwise work feeding it inside its accumulator
loop; an epilogue kernel first runs its host (the matmul or conv2d whose ``epilogue_kind`` is the
kernel's kind) into a temporary that the epilogue then reads like an input.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from graphc.ir.tensor import Tensor
from graphc.lower.builder import (
    LoweringContext,
    Unsupported,
    broadcast_strides,
    buffer_name,
    kernel_output_buffers,
    linear_index,
)
from graphc.lower.conv import conv2d_statements
from graphc.lower.elementwise import Values, elementwise_expr, node_values, store_broadcast
from graphc.lower.linalg import matmul_statements
from graphc.lower.loopir import Expr, IVar, Load, Stmt
from graphc.lower.reduce import reduction_statements
from graphc.lower.registry import lowers
from graphc.ops.kernel import Kernel, inner_avals
from graphc.ops.linalg import matmul_flags


def _elementwise_output(out: Tensor) -> bool:
    return out.opdef.reduction is None and out.opdef.family == "elementwise"


@lowers("fused")
def fused(node: Tensor, ctx: LoweringContext) -> list[Stmt]:
    kernel: Kernel = node.attrs["kernel"]
    inner = inner_avals(kernel, [ctx.aval(i) for i in node.inputs])
    params = {p.id: (buffer_name(node.inputs[p.attrs["index"]]), inner[p.id]) for p in kernel.params}
    outs = kernel_output_buffers(node)
    body: list[Stmt] = []
    host = next((n for n in kernel.body if n.opdef.epilogue_kind == kernel.kind), None)
    if host is not None:  # the matmul / conv2d fills a temporary that the epilogue then reads like an input
        a, b = host.inputs
        # (or, when its own result is needed outside the kernel too, that output's buffer: no copy)
        host_out = next((buffer for buffer, out in zip(outs, kernel.outputs) if out is host), None)
        temp = host_out or ctx.scratch(inner[host.id].dtype, math.prod(inner[host.id].shape),
                                       name=f"{buffer_name(node)}_host")
        operands = (params[a.id][0], inner[a.id]), (params[b.id][0], inner[b.id])
        if host.op == "matmul":
            body += matmul_statements(*operands, temp, inner[host.id].dtype, ctx, matmul_flags(host))
        elif host.op == "conv2d":
            body += conv2d_statements(*operands, temp, host.attrs, ctx)
        else:
            raise Unsupported(f"op {host.op} cannot host a fused epilogue yet")
        params = {**params, host.id: (temp, inner[host.id])}
    elementwise: dict[tuple[int, ...], list[tuple[str, Values]]] = {}  # one loop nest per output shape
    for buffer, out in zip(outs, kernel.outputs):
        if _elementwise_output(out):
            elementwise.setdefault(tuple(inner[out.id].shape), []).append((buffer, node_values(out)))
    for shape, stores in elementwise.items():
        body += store_broadcast(stores, params, shape, ctx)
    for buffer, out in zip(outs, kernel.outputs):
        if _elementwise_output(out):
            continue
        if out.opdef.reduction is not None:
            x = out.inputs[0]
            shape = inner[x.id].shape

            def value(full: list[IVar], x: Tensor = x, shape: Sequence[int] = shape) -> Expr:
                loads = {pid: Load(b, linear_index(full, broadcast_strides(a.shape, shape)), a.dtype)
                         for pid, (b, a) in params.items()}
                return elementwise_expr(x, lambda t: loads.get(t.id), {})

            body += reduction_statements(out, inner[out.id].dtype, buffer, shape, value, ctx)
        elif out is host:  # the matmul's own result is needed outside the kernel too: it was written there
            continue
        else:
            raise Unsupported(f"fused kernels of kind {kernel.kind} ({out.op}) cannot be lowered yet")
    return body


__all__: list[str] = []
