"""The optional C extension built from ``_speedups.c`` (see :mod:`wslab.foundation.frames`)."""

from typing_extensions import Buffer

def apply_mask(data: Buffer, mask: Buffer, /) -> bytes:
    """XOR ``data`` with a 4-byte ``mask`` repeated."""

def mask_frame(header: Buffer, data: Buffer, mask: Buffer, /) -> bytes:
    """``header`` + ``data`` XOR-ed with ``mask``, in one copy."""
