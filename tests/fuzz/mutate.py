"""Mutation strategies: valid seed files, then flipped, replaced, inserted, cut and spliced bytes.

Random bytes alone rarely get past a format's magic number; mutating a valid file reaches the
parsers' deeper branches (a sound header with a broken chunk, a count that lies, a cut string).
"""

from __future__ import annotations

from hypothesis import strategies as st


@st.composite
def mutated(draw, seeds: list[bytes], max_edits: int = 8) -> bytes:
    """One of `seeds` with up to `max_edits` random edits, or now and then raw random bytes."""
    if draw(st.integers(0, 19)) == 0:
        return draw(st.binary(max_size=512))
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, max_edits))):
        kind = draw(st.sampled_from(("flip", "set", "insert", "delete", "cut", "splice", "int")))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set" and data:
            data[at] = draw(st.sampled_from((0, 1, 0x7F, 0x80, 0xFF, draw(st.integers(0, 255)))))
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 16))]
        elif kind == "cut":
            del data[at:]
        elif kind == "splice":
            other = draw(st.sampled_from(seeds))
            start = draw(st.integers(0, max(len(other) - 1, 0)))
            data[at:at] = other[start : start + draw(st.integers(1, 64))]
        elif kind == "int" and len(data) >= at + 8:  # a length or count field that lies
            data[at : at + 8] = draw(
                st.sampled_from(
                    (0, 1, 2**31, 2**32 - 1, 2**63, 2**64 - 1, draw(st.integers(0, 2**64 - 1)))
                )
            ).to_bytes(8, "little")
    return bytes(data)
