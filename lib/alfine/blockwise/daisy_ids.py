"""daisy's numbers of blocks and alfine's ids.

daisy 2 numbers a block of a task by the Cantor number of its position in the block grid: for a grid
index ``(i_0, ..., i_{n-1})`` with partial sums ``S_k = i_0 + ... + i_{k-1}``, the number is
``sum over k = 1..n of C(S_k + k - 1, k)``. Reading that number costs nothing, where asking a daisy
block for its write region builds a ``Roi`` (tens of microseconds, as much as daisy's own work per block
when blocks are small), so a worker turns it back into the grid index. The numbering is daisy's, not a
documented promise: :func:`agrees` checks it against daisy's own blocks before a run relies on it, and
workers fall back to the write region where it does not hold.
"""

from __future__ import annotations

import math


def daisy_number(index) -> int:
    """daisy's number of the block at grid ``index`` (see the module)."""
    total = partial = 0
    for k, i in enumerate(index, start=1):
        partial += i
        total += math.comb(partial + k - 1, k)
    return total


def grid_index(number: int, dims: int) -> tuple[int, ...]:
    """The grid index whose :func:`daisy_number` is ``number``. A worker calls it for every block, so a grid of
    up to three axes is inverted with integer steps alone (well under a microsecond)."""
    if dims > 3:
        return _grid_index_any(number, dims)
    s2 = s3 = 0  # S_3 and S_2, as in the module: largest with C(S_k + k - 1, k) <= what is left
    if dims == 3:  # C(s + 2, 3) = s (s + 1) (s + 2) / 6
        six = 6 * number
        s3 = int(six ** (1 / 3))
        while s3 > 0 and s3 * (s3 + 1) * (s3 + 2) > six:
            s3 -= 1
        while (s3 + 1) * (s3 + 2) * (s3 + 3) <= six:
            s3 += 1
        number -= s3 * (s3 + 1) * (s3 + 2) // 6
    if dims >= 2:  # C(s + 1, 2) = s (s + 1) / 2: the triangular root, exactly
        s2 = (math.isqrt(8 * number + 1) - 1) >> 1
        number -= s2 * (s2 + 1) >> 1
    rest = number  # S_1 = i_0
    if dims == 3:
        return rest, s2 - rest, s3 - s2
    return (rest, s2 - rest) if dims == 2 else (rest,)


def _grid_index_any(number: int, dims: int) -> tuple[int, ...]:
    """:func:`grid_index` for any number of axes."""
    sums = []
    rest = number
    for k in range(dims, 0, -1):  # the largest partial sum S_k with C(S_k + k - 1, k) <= rest, last axis first
        s = int((math.factorial(k) * rest) ** (1 / k))
        while s > 0 and math.comb(s + k - 1, k) > rest:
            s -= 1
        while math.comb(s + k, k) <= rest:
            s += 1
        rest -= math.comb(s + k - 1, k)
        sums.append(s)
    sums.reverse()
    return tuple(b - a for a, b in zip([0, *sums[:-1]], sums, strict=True))


def agrees(layout, total_roi) -> bool:
    """Whether daisy numbers the blocks of ``layout`` (in a task over ``total_roi``: the layout's region grown
    by its context) as :func:`daisy_number` says, checked on a few whole blocks against ``daisy.Block``. (A
    ``daisy.Block`` made for a block cut at the region's end numbers it by its cut size, where the scheduler
    numbers it by its grid position, so cut blocks are not asked; tests check them through the scheduler.)"""
    import daisy

    grid = layout.grid_shape
    samples = sorted({0, 1, len(layout) // 2, len(layout) - 1} & set(range(len(layout))))
    for block_id in samples:
        block = layout.block(block_id)
        if tuple(block.write_roi.shape) != tuple(layout.block_shape):
            continue
        index, rest = [], block_id
        for n in reversed(grid):
            rest, i = divmod(rest, n)
            index.append(i)
        index.reverse()
        number = daisy.Block(total_roi, block.read_roi, block.write_roi).block_id[1]
        if number != daisy_number(index) or grid_index(number, len(grid)) != tuple(index):
            return False
    return True
