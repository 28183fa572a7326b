"""``prefetch(array, i)``: a numba intrinsic that asks the CPU to start loading a cache
line (``llvm.prefetch``) without waiting for it.

Random lookups in a big table are bound by memory latency (~100 ns a miss). The
batched kernels are software-pipelined: while key ``i`` is probed, the buckets of key
``i + D`` are already on their way, so several misses overlap. ``i`` indexes the
first axis (an element of a 1-D array, a row of a 2-D one).
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic


@intrinsic
def prefetch(typingctx, array, index):  # noqa: ANN001, ANN201 - numba intrinsic signature
    if not isinstance(array, types.Array) or not isinstance(index, types.Integer):
        return None

    def codegen(context, builder, signature, args):  # noqa: ANN001, ANN202
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        idx = [args[1]] + [context.get_constant(types.intp, 0)] * (aryty.ndim - 1)
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, idx, wraparound=False)
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0i8")
        # (address, rw=read, locality=3 keep in all cache levels, cache type=data)
        builder.call(fn, [builder.bitcast(ptr, i8p), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return types.void(array, index), codegen
