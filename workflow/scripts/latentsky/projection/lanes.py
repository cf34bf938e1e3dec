"""Eight float32 lanes held in one LLVM vector, for numba kernels.

numba leaves LLVM's SLP vectoriser off, so eight scalar accumulators updated side by side stay
eight scalar multiplies and adds per step, and the projection kernel was limited by them. These
intrinsics make the vector explicit: a value of type :data:`lanes8` is an LLVM ``<8 x float>`` (one
AVX register), updated with one vector load, multiply and add. Arithmetic is IEEE float32 lane by
lane, the multiply and the add each rounded (no fused multiply-add), as scipy's CSR product does.

Use inside ``numba.njit`` code only::

    acc = zero_lanes()
    acc = add_scaled(acc, weight, tile, start)  # acc + weight * tile[start:start + 8]
    store_lanes(acc, buffer, start)  # buffer[start:start + 8] = acc
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


def _is_vector_array(array, dtypes) -> bool:
    """Whether a numba type is a C-contiguous 1-D array of one of ``dtypes``."""
    return (
        isinstance(array, types.Array)
        and array.ndim == 1
        and array.layout == "C"
        and array.dtype in dtypes
    )


def _vector_pointer(context, builder, array_type, array, start, start_type):
    """LLVM pointer to ``array[start]`` as a pointer to eight elements."""
    data = context.make_array(array_type)(context, builder, array).data
    offset = context.cast(builder, start, start_type, types.intp)
    pointer = builder.gep(data, [offset], inbounds=True)
    element = context.get_data_type(array_type.dtype)
    return builder.bitcast(pointer, ir.VectorType(element, LANES).as_pointer())


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
        and _is_vector_array(tile, (types.uint16, types.float32))
        and isinstance(start, types.Integer)
    ):
        return None

    def codegen(context, builder, signature, args):
        acc, weight, tile, start = args
        tile_type = signature.args[2]
        pointer = _vector_pointer(context, builder, tile_type, tile, start, signature.args[3])
        loaded = builder.load(pointer, align=tile_type.dtype.bitwidth // 8)
        values = builder.uitofp(loaded, _VECTOR) if tile_type.dtype == types.uint16 else loaded
        one_lane = builder.insert_element(
            ir.Constant(_VECTOR, ir.Undefined), weight, ir.Constant(ir.IntType(32), 0)
        )
        weights = builder.shuffle_vector(  # broadcast lane 0
            one_lane,
            ir.Constant(_VECTOR, ir.Undefined),
            ir.Constant(ir.VectorType(ir.IntType(32), LANES), [0] * LANES),
        )
        return builder.fadd(acc, builder.fmul(weights, values))

    return lanes8(lanes8, types.float32, tile, start), codegen


@intrinsic
def store_lanes(typingctx, acc, buffer, start):
    """``buffer[start:start + 8] = acc`` for a C-contiguous 1-D float32 ``buffer``. No bounds
    check: the caller guarantees ``0 <= start`` and ``start + 8 <= buffer.size``."""
    if not (
        acc == lanes8
        and _is_vector_array(buffer, (types.float32,))
        and isinstance(start, types.Integer)
    ):
        return None

    def codegen(context, builder, signature, args):
        acc, buffer, start = args
        pointer = _vector_pointer(
            context, builder, signature.args[1], buffer, start, signature.args[2]
        )
        builder.store(acc, pointer, align=4)
        return context.get_dummy_value()

    return types.none(lanes8, buffer, start), codegen
