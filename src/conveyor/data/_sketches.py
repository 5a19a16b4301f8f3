"""Fast bulk loading of KLL quantile sketches.

Feeding a KLL sketch costs about 30 ns per value, which for wide tables is most of the
profiling time. For large chunks we use the sampler of the KLL paper (Karnin, Lang and
Liberty, "Optimal quantile approximation in streams", 2016, section 4): a sample with
rate 2^-j (here stratified: one value per block of 2^j) is fed to the sketch and every
retained item then carries weight 2^j, which in KLL's layout means "j levels higher". We
apply that by prepending j empty levels
to the serialized sketch (format of datasketches-cpp `kll_sketch::serialize`, full
preamble) and deserializing it. The result is an ordinary sketch: it merges, updates and
serializes like any other. The sample adds a rank error of at most
`sampling_rank_error(sample_size)` (99% confidence), added to the reported error.
"""

from __future__ import annotations

import math
import struct

import numpy as np
from datasketches import kll_doubles_sketch

# A chunk is sampled only when the sample keeps at least this many values, so the extra
# rank error stays below 2.58 * 0.5 / sqrt(2**16) = 0.005 at 99% confidence.
MIN_SAMPLE = 1 << 16

_PREAMBLE_FULL = 5
_HEADER = 20  # bytes before the levels array in the full preamble


def sampling_rank_error(sample_size: int) -> float:
    """99%-confidence bound on the rank error added by a Bernoulli sample of this size."""
    return 2.576 * 0.5 / math.sqrt(sample_size)


def _level_capacity(k: int, num_levels: int, height: int, m: int) -> int:
    depth = num_levels - height - 1
    # kll_helper::int_cap_aux: round(k * (2/3)^depth), computed in integers.
    if depth > 30:
        half = depth // 2
        value = _cap_aux(_cap_aux(k, half), depth - half)
    else:
        value = _cap_aux(k, depth)
    return max(m, value)


def _cap_aux(k: int, depth: int) -> int:
    tmp = ((2 * k) << depth) // (3**depth)
    return int(tmp + 1) >> 1


def _total_capacity(k: int, m: int, num_levels: int) -> int:
    return sum(_level_capacity(k, num_levels, h, m) for h in range(num_levels))


def _raise_levels(blob: bytes, shift: int) -> bytes:
    """The serialized sketch with every item `shift` levels up (weights times 2^shift)."""
    if blob[0] != _PREAMBLE_FULL:
        raise ValueError("only sketches in the full serialized form can be raised")
    (k,) = struct.unpack_from("<H", blob, 4)
    m = blob[6]
    (n,) = struct.unpack_from("<Q", blob, 8)
    num_levels = blob[18]
    levels = list(struct.unpack_from(f"<{num_levels}I", blob, _HEADER))
    capacity = _total_capacity(k, m, num_levels)
    levels.append(capacity)
    new_levels = num_levels + shift
    delta = _total_capacity(k, m, new_levels) - capacity
    offsets = [levels[0] + delta] * shift + [x + delta for x in levels]
    out = bytearray(blob[:_HEADER])
    out[18] = new_levels
    struct.pack_into("<Q", out, 8, n << shift)
    out += struct.pack(f"<{new_levels}I", *offsets[:new_levels])
    # Levels above 0 must be sorted; level 0 may not be, so sort it before it moves up.
    start = _HEADER + 4 * num_levels + 16  # after the min and max items
    size = levels[1] - levels[0]
    items = np.frombuffer(blob, dtype="<f8", count=capacity - levels[0], offset=start).copy()
    items[:size].sort()
    out += blob[_HEADER + 4 * num_levels : start]
    out += items.tobytes()
    return bytes(out)


def sampled_sketch(values: np.ndarray, k: int) -> tuple[kll_doubles_sketch, int]:
    """A KLL sketch of `values` (finite float64, at least 2 * MIN_SAMPLE of them) built
    from a Bernoulli sample, and the sample size."""
    n = int(values.size)
    shift = max(1, math.floor(math.log2(n / MIN_SAMPLE)))
    step = 1 << shift
    # Stratified sample: one random position in each block of `step` values (a last,
    # partial block of r values contributes with probability r / step). Every value is
    # picked with probability exactly 1 / step, and the rank error is no larger than
    # that of a Bernoulli sample of the same rate.
    blocks = -(-n // step)
    picks = np.arange(0, blocks * step, step, dtype=np.int64)
    picks += np.random.default_rng().integers(0, step, size=blocks, dtype=np.int64)
    if picks[-1] >= n:
        picks = picks[:-1]
    sample = values[picks]
    sketch = kll_doubles_sketch(k)
    sketch.update(sample)
    raised = kll_doubles_sketch.deserialize(_raise_levels(sketch.serialize(), shift))
    return raised, int(sample.size)
