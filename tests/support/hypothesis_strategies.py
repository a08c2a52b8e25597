"""Hypothesis strategies shared by the fuzzing tests (tunnel socket and polling endpoints)."""

from __future__ import annotations

import json

from hypothesis import strategies as st

__all__ = ["json_values", "junk"]

#: Any JSON value, nested a little: the wrong type for whatever field it lands in.
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def _is_json_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False


#: Text that is not a JSON object: what a message must be, so every one of these is refused.
junk = st.text(max_size=60).filter(lambda t: not _is_json_object(t)) | st.sampled_from(
    ["[" * 5000, '{"message_id": "x"', "null", "123", '"str"']
)
