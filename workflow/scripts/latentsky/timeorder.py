"""Records out of place in time: which ones to blame.

When one record of a file is displaced (written late, or with a damaged time stamp that still
parses), every record after it looks "earlier than a previous one" to a reader that compares each
with the latest so far: dozens of good records get counted, and the message names a good one. The
culprits are instead the fewest records whose removal leaves the rest in order.
"""

from __future__ import annotations

import bisect


def in_order_culprits(values: list[float], strict: bool = False) -> list[int]:
    """Indices of the fewest items whose removal leaves ``values`` in order (non-decreasing, or
    increasing with ``strict``): the complement of a longest such run.

    Where two runs are equally long the earlier items are kept (of two swapped neighbours the
    second is the culprit). O(n log n).
    """
    # The longest run kept is found backwards as a longest non-increasing run of the reversed
    # values, which prefers the earlier items.
    tails: list[float] = []  # tails[k]: the best last (negated) value of a run of length k + 1
    tail_index: list[int] = []
    previous = [-1] * len(values)
    for i in range(len(values) - 1, -1, -1):
        value = -values[i]
        k = (bisect.bisect_left if strict else bisect.bisect_right)(tails, value)
        previous[i] = tail_index[k - 1] if k else -1
        if k == len(tails):
            tails.append(value)
            tail_index.append(i)
        else:
            tails[k] = value
            tail_index[k] = i
    kept = set()
    i = tail_index[-1] if tail_index else -1
    while i >= 0:
        kept.add(i)
        i = previous[i]
    return [i for i in range(len(values)) if i not in kept]
