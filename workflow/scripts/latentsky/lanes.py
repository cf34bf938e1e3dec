"""Eight float32 lanes held in one LLVM vector, for numba kernels.

numba leaves LLVM's SLP vectoriser off, so eight scalar accumulators updated side by side stay
eight scalar multiply-adds, and a chain of them per CSR row limits the projection kernel. These
intrinsics make the vector explicit: a value of type :data:`lanes8` is an LLVM ``<8 x float>`` (a
ymm register), updated with one vector load, multiply and add. Arithmetic is IEEE float32 lane by
lane, multiply and add each rounded (no fused multiply-add), as scipy's CSR product computes.

Use inside ``numba.njit`` code only::

    acc = zero_lanes()
    acc = add_scaled(acc, weight, tile, start)  # acc + weight * tile[start:start + 8]
    value = lane(acc, k)
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.extending import intrinsic, models, register_model

#: Number of lanes.
LANES = 8
_VECTOR = ir.VectorType(ir.FloatType(), LANES)


class Lanes8(types.Type):
    """numba type of eight float32 lanes."""

    def __init__(self):
        super().__init__(name="Lanes8")


lanes8 = Lanes8()


@register_model(Lanes8)
class _Lanes8Model(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, _VECTOR)


@intrinsic
def zero_lanes(typingctx):
    """Eight lanes of 0.0."""

    def codegen(context, builder, signature, args):
        return ir.Constant(_VECTOR, [0.0] * LANES)

    return lanes8(), codegen


@intrinsic
def add_scaled(typingctx, acc, weight, tile, start):
    """``acc + weight * tile[start:start + 8]``, lane by lane, in float32.

    ``tile`` is a C-contiguous 1-D uint16 or float32 array (uint16 values are converted exactly);
    ``weight`` a float32; ``start`` an integer. No bounds check: the caller guarantees
    ``0 <= start`` and ``start + 8 <= tile.size``.
    """
    if not (
        acc == lanes8
        and weight == types.float32
        and isinstance(tile, types.Array)
        and tile.ndim == 1
        and tile.layout == "C"
        and tile.dtype in (types.uint16, types.float32)
        and isinstance(start, types.Integer)
    ):
        return None

    def codegen(context, builder, signature, args):
        acc, weight, tile, start = args
        array = context.make_array(signature.args[2])(context, builder, tile)
        element = context.get_data_type(signature.args[2].dtype)
        offset = context.cast(builder, start, signature.args[3], types.intp)
        pointer = builder.gep(array.data, [offset], inbounds=True)
        loaded = builder.load(
            builder.bitcast(pointer, ir.VectorType(element, LANES).as_pointer()),
            align=signature.args[2].dtype.bitwidth // 8,
        )
        values = builder.uitofp(loaded, _VECTOR) if element != ir.FloatType() else loaded
        index0 = ir.Constant(ir.IntType(32), 0)
        one_lane = builder.insert_element(ir.Constant(_VECTOR, ir.Undefined), weight, index0)
        weights = builder.shuffle_vector(
            one_lane,
            ir.Constant(_VECTOR, ir.Undefined),
            ir.Constant(ir.VectorType(ir.IntType(32), LANES), [0] * LANES),
        )
        return builder.fadd(acc, builder.fmul(weights, values))

    return lanes8(lanes8, types.float32, tile, start), codegen


@intrinsic
def lane(typingctx, acc, k):
    """Lane ``k`` (0..7, not checked) of ``acc``, a float32."""
    if acc != lanes8 or not isinstance(k, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        return builder.extract_element(args[0], args[1])

    return types.float32(lanes8, k), codegen
