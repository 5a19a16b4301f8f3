"""`QuantileSketch`: a deterministic, mergeable KLL quantile sketch, exact while small.

The sketch follows KLL (Karnin, Lang and Liberty, "Optimal quantile approximation in
streams", 2016) as Apache DataSketches lays it out: levels of sorted items, an item on
level h standing for 2^h values, level capacities shrinking by 2/3 towards the bottom, and
a compaction that sorts a full level and promotes every other item, starting at the first
or the second. KLL draws that start with a coin; here the coin is a hash of the level, how
often the level was compacted and the level's middle item, so the same values fed in the
same order give the same sketch (and the same quantiles, drift scores and verdicts) in
every process, while the choice still looks random to the data. The rank error bound is
KLL's (99% confidence, `normalized_rank_error`).

Columns of at most `EXACT_LIMIT` values need no sketching: every value is kept
(`is_exact`, error 0), so small windows are compared exactly.

A chunk of at least `_BULK` values is compacted on its own before it joins the sketch, as
a merge tree of blocks of `_BLOCK` values (sorting many short rows at once costs a fraction
of sorting the chunk); every step is an ordinary KLL compaction. Very large chunks first
go through the sampler of the KLL paper (section 4): a stratified sample of rate
2^-j (one value per block of 2^j, at a position drawn from a generator seeded by the
chunk's own values) goes straight to level j. The sample adds a rank error of at most
`sampling_rank_error(sample_size)` (99% confidence), which `ColumnProfile` adds to the
reported error.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence

import numpy as np

# A chunk is sampled only when the sample keeps at least this many values, so the extra
# rank error stays below 2.58 * 0.5 / sqrt(2**16) = 0.005 at 99% confidence.
MIN_SAMPLE = 1 << 16
# Columns with at most this many values keep all of them: quantiles, ranks and KS are exact.
EXACT_LIMIT = 2048
_MIN_WIDTH = 8  # KLL's smallest level capacity (m)
_MAGIC = b"CVQS"
_VERSION = 1
_HEAD = struct.Struct("<4sBHBBQdd")  # magic, version, k, levels, exact, weight, min, max
_MASK = (1 << 64) - 1


def sampling_rank_error(sample_size: int) -> float:
    """99%-confidence bound on the rank error added by a Bernoulli sample of this size."""
    return 2.576 * 0.5 / math.sqrt(sample_size)


def kll_rank_error(k: int, *, pmf: bool = True) -> float:
    """KLL's normalized rank error at 99% confidence (the DataSketches constants).

    Args:
        k: The sketch's size parameter.
        pmf: The bound for a whole pmf/cdf (True) or for a single rank or quantile.
    """
    return float(2.446 / k**0.9433 if pmf else 2.296 / k**0.9723)


def _splitmix(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def _bits(value: float) -> int:
    return int(struct.unpack("<Q", struct.pack("<d", value))[0])


def _coin(level: int, count: int, pivot: float) -> int:
    """KLL's fair coin, made a pure function of where and what is compacted."""
    return _splitmix(_bits(pivot) ^ _splitmix((level << 40) ^ count)) >> 63


def _coins(level: int, first: int, pivots: np.ndarray) -> np.ndarray:
    """`_coin` for many compactions at once: the k-th uses count ``first + k``."""
    counts = np.arange(first, first + pivots.size, dtype=np.uint64)
    x = np.ascontiguousarray(pivots, dtype=np.float64).view(np.uint64)
    x = x ^ _splitmix_array(counts ^ np.uint64(level << 40))
    return (_splitmix_array(x) >> np.uint64(63)).astype(np.intp)


def _splitmix_array(x: np.ndarray) -> np.ndarray:
    x = x + np.uint64(0x9E3779B97F4A7C15)  # uint64 arrays wrap silently, as intended
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    out: np.ndarray = x ^ (x >> np.uint64(31))
    return out


def _capacity(k: int, levels: int, height: int, m: int = _MIN_WIDTH) -> int:
    """KLL's level capacity: k * (2/3)^depth rounded, in integers (kll_helper::int_cap_aux)."""
    depth = levels - height - 1
    if depth > 30:
        half = depth // 2
        return max(m, _cap_aux(_cap_aux(k, half), depth - half))
    return max(m, _cap_aux(k, depth))


def _cap_aux(k: int, depth: int) -> int:
    return int(((2 * k) << depth) // (3**depth) + 1) >> 1


def _merge_sorted(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if not a.size:
        return b
    if not b.size:
        return a
    out = np.concatenate([a, b])
    out.sort(kind="stable")  # timsort: linear on two sorted runs
    return out


_EMPTY = np.zeros(0, dtype=np.float64)
# Chunks of at least this many values are compacted on their own, in blocks of _BLOCK.
_BULK = 1024
_BLOCK = 256


def _sample(values: np.ndarray) -> tuple[np.ndarray, int]:
    """A stratified sample of rate 2^-j of `values` and j (at least 1)."""
    n = int(values.size)
    shift = max(1, math.floor(math.log2(n / MIN_SAMPLE)))
    step = 1 << shift
    # One position in each block of `step` values (a last, partial block of r values
    # contributes with probability r / step), so every value is picked with probability
    # 1 / step. The generator is seeded by the chunk itself: same values, same sample.
    seed = _splitmix(_bits(float(values[0])) ^ _bits(float(values[n // 2])) ^ n)
    blocks = -(-n // step)
    picks = np.arange(0, blocks * step, step, dtype=np.int64)
    picks += np.random.default_rng(seed).integers(0, step, size=blocks, dtype=np.int64)
    if picks[-1] >= n:
        picks = picks[:-1]
    return values[picks], shift


class QuantileSketch:
    """Deterministic mergeable quantile sketch of finite float64 values.

    Ranks are exclusive: `get_rank(x)` is the fraction of values < x, `get_cdf` the
    fraction below each split point, `get_quantile(r)` the smallest retained value whose
    cumulative weight exceeds r (as Apache DataSketches answers with ``inclusive=False``).

    Args:
        k: Size parameter; the rank error is `kll_rank_error(k)` once the sketch compacts.
    """

    __slots__ = ("_counts", "_exact", "_levels", "_view", "k", "max", "min", "n")

    def __init__(self, k: int = 200) -> None:
        self.k = k
        self.n = 0  # total weight of the retained items
        self.min = math.inf
        self.max = -math.inf
        self._levels: list[np.ndarray] = [_EMPTY]
        self._counts: list[int] = [0]  # compactions per level (feeds the coin)
        self._exact = True
        self._view: tuple[np.ndarray, np.ndarray] | None = None

    # ------------------------------------------------------------------ state
    def is_empty(self) -> bool:
        return self.n == 0

    @property
    def is_exact(self) -> bool:
        """Whether every value is retained with weight 1 (rank error 0)."""
        return self._exact

    def num_retained(self) -> int:
        return sum(int(level.size) for level in self._levels)

    def normalized_rank_error(self, pmf: bool = True) -> float:
        """Rank error at 99% confidence: 0 while exact, KLL's bound once compacted."""
        return 0.0 if self._exact else kll_rank_error(self.k, pmf=pmf)

    def _grow(self, levels: int) -> None:
        while len(self._levels) < levels:
            self._levels.append(_EMPTY)
            self._counts.append(0)

    # ------------------------------------------------------------------ building
    def update(self, values: np.ndarray) -> int:
        """Add finite float64 values (NaN and Inf must be removed by the caller).

        Returns:
            The size of the sample that stood for them (chunks of at least
            2 * MIN_SAMPLE values are sampled), or 0 when every value went in.
        """
        values = np.asarray(values, dtype=np.float64)
        if not values.size:
            return 0
        self._view = None
        self.min = min(self.min, float(values.min()))
        self.max = max(self.max, float(values.max()))
        size = int(values.size)
        sampled = 0
        if size >= 2 * MIN_SAMPLE:
            sample, shift = _sample(values)
            self._add_chunk(sample, shift)
            sampled = int(sample.size)
        elif size < _BULK or (self._exact and self.n + size <= EXACT_LIMIT):
            self._levels[0] = np.concatenate([self._levels[0], values])
            self.n += size
        else:
            self._add_chunk(values, 0)
        self._compress()
        return sampled

    def _add_chunk(self, values: np.ndarray, level: int) -> None:
        """Add a long chunk of values of weight 2^level, compacting it on its own first.

        KLL's compactions done as a merge tree: the chunk is cut into blocks of _BLOCK
        values, each block is sorted and compacted (every other value, from the block's
        coin), pairs of compacted blocks are merged, sorted and compacted again, and so on
        until what is left fits in 2k items. Sorting many short rows at once is several
        times cheaper than sorting the chunk, and every step is an ordinary KLL
        compaction, so the sketch's error bound is unchanged. The pieces (the top rows and
        any odd row left at a level) are then merged into the sketch.
        """
        self.n += int(values.size) << level
        self._exact = False
        full = values.size - values.size % _BLOCK
        pieces: list[tuple[int, np.ndarray]] = []
        if full < values.size:
            pieces.append((level, np.sort(values[full:])))
        rows = np.sort(values[:full].reshape(-1, _BLOCK), axis=1) if full else None
        half = np.arange(_BLOCK // 2) * 2
        while rows is not None:
            self._grow(level + 1)
            count = rows.shape[0]
            coins = _coins(level, self._counts[level], rows[:, _BLOCK // 2])
            self._counts[level] += count
            kept = np.take_along_axis(rows, coins[:, None] + half[None, :], axis=1)
            level += 1
            if count * (_BLOCK // 2) <= 2 * self.k:
                pieces.append((level, np.sort(kept.ravel())))
                break
            if count % 2:
                pieces.append((level, kept[-1].copy()))
                kept = kept[:-1]
            rows = np.sort(kept.reshape(-1, _BLOCK), axis=1)
        self._grow(level + 1)
        for height, piece in pieces:
            self._levels[height] = _merge_sorted(self._levels[height], piece)

    def merge(self, other: QuantileSketch) -> None:
        """Add the values summarized by `other` (left unchanged)."""
        if other.is_empty():
            return
        self._view = None
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)
        self._grow(len(other._levels))
        self._levels[0] = np.concatenate([self._levels[0], other._levels[0]])
        for h in range(1, len(other._levels)):
            self._levels[h] = _merge_sorted(self._levels[h], other._levels[h])
        for h, count in enumerate(other._counts):
            self._counts[h] += count
        self.n += other.n
        self._exact = self._exact and other._exact
        self._compress()

    def _compress(self) -> None:
        if self._exact and len(self._levels) == 1 and self.n <= EXACT_LIMIT:
            return
        while True:
            levels = len(self._levels)
            sizes = [int(level.size) for level in self._levels]
            capacities = [_capacity(self.k, levels, h) for h in range(levels)]
            if sum(sizes) <= sum(capacities):
                return
            height = next(
                (h for h in range(levels) if sizes[h] >= capacities[h]),
                max(range(levels), key=lambda h: sizes[h]),
            )
            self._compact(height)

    def _compact(self, height: int) -> None:
        self._exact = False
        self._grow(height + 2)
        items = self._levels[height]
        if height == 0:
            items = np.sort(items)
        keep = items[:1] if items.size % 2 else _EMPTY  # an odd item stays where it is
        even = items[items.size % 2 :]
        offset = _coin(height, self._counts[height], float(even[even.size // 2]))
        self._counts[height] += 1
        self._levels[height] = keep.copy()
        promoted = np.ascontiguousarray(even[offset::2])  # a copy: drop the big buffer
        self._levels[height + 1] = _merge_sorted(self._levels[height + 1], promoted)

    # ------------------------------------------------------------------ queries
    def _sorted(self) -> tuple[np.ndarray, np.ndarray]:
        if self._view is None:
            items = np.concatenate(self._levels)
            weights = np.concatenate(
                [
                    np.full(level.size, 1 << h, dtype=np.int64)
                    for h, level in enumerate(self._levels)
                ]
            )
            order = np.argsort(items, kind="stable")
            self._view = (items[order], np.cumsum(weights[order]))
        return self._view

    def _ranks(self, points: Sequence[float]) -> np.ndarray:
        items, cumulative = self._sorted()
        index = np.searchsorted(items, np.asarray(points, dtype=np.float64), side="left")
        below = np.where(index > 0, cumulative[np.maximum(index - 1, 0)], 0)
        return np.asarray(below / self.n, dtype=np.float64)

    def get_rank(self, value: float) -> float:
        """Fraction of values < `value`."""
        return float(self._ranks([value])[0])

    def get_cdf(self, split_points: Sequence[float]) -> list[float]:
        """Fraction of values below each split point, then 1.0."""
        return [*self._ranks(split_points).tolist(), 1.0]

    def get_pmf(self, split_points: Sequence[float]) -> list[float]:
        """Mass in (-inf, s0), [s0, s1), ..., [sn, +inf)."""
        cdf = np.asarray(self.get_cdf(split_points))
        return [float(x) for x in np.diff(cdf, prepend=0.0)]

    def get_quantiles(self, ranks: Sequence[float]) -> list[float]:
        items, cumulative = self._sorted()
        weight = np.floor(np.asarray(ranks, dtype=np.float64) * self.n)
        index = np.searchsorted(cumulative, weight, side="right")
        values = items[np.minimum(index, items.size - 1)]
        return [float(x) for x in np.where(index >= items.size, self.max, values)]

    def get_quantile(self, rank: float) -> float:
        return float(self.get_quantiles([rank])[0])

    # ------------------------------------------------------------------ bytes
    def serialize(self) -> bytes:
        levels = len(self._levels)
        head = _HEAD.pack(
            _MAGIC, _VERSION, self.k, levels, int(self._exact), self.n, self.min, self.max
        )
        sizes = struct.pack(f"<{levels}I", *(int(level.size) for level in self._levels))
        counts = struct.pack(f"<{levels}Q", *self._counts)
        return b"".join([head, sizes, counts, *(level.tobytes() for level in self._levels)])

    @classmethod
    def deserialize(cls, data: bytes) -> QuantileSketch:
        """Rebuild a sketch from `serialize` output (or a DataSketches KLL doubles blob).

        Raises:
            ValueError: the bytes are neither.
        """
        if data[:4] != _MAGIC:
            return _from_datasketches(data)
        _magic, version, k, levels, exact, weight, low, high = _HEAD.unpack_from(data)
        if version != _VERSION:
            raise ValueError(f"quantile sketch format {version} is not supported")
        offset = _HEAD.size
        sizes = struct.unpack_from(f"<{levels}I", data, offset)
        offset += 4 * levels
        counts = struct.unpack_from(f"<{levels}Q", data, offset)
        offset += 8 * levels
        sketch = cls(k)
        sketch._levels = []
        for size in sizes:
            sketch._levels.append(
                np.frombuffer(data, dtype="<f8", count=size, offset=offset).copy()
            )
            offset += 8 * size
        sketch._counts = list(counts)
        sketch.n, sketch.min, sketch.max, sketch._exact = weight, low, high, bool(exact)
        return sketch


def _from_datasketches(blob: bytes) -> QuantileSketch:
    """Read the KLL doubles sketches stored by Profile format 1 (DataSketches layout)."""
    from datasketches import kll_doubles_sketch

    old = kll_doubles_sketch.deserialize(blob)
    (k,) = struct.unpack_from("<H", blob, 4)
    sketch = QuantileSketch(k)
    if old.is_empty():
        return sketch
    if blob[0] != 5:  # the short form holds a single item
        sketch.update(np.array([old.get_min_value()]))
        return sketch
    m = blob[6]
    num_levels = blob[18]
    offsets = list(struct.unpack_from(f"<{num_levels}I", blob, 20))
    offsets.append(sum(_capacity(k, num_levels, h, m) for h in range(num_levels)))
    start = 20 + 4 * num_levels + 16  # after the min and max items
    items = np.frombuffer(blob, dtype="<f8", count=offsets[-1] - offsets[0], offset=start)
    sketch._levels = [
        np.sort(items[offsets[h] - offsets[0] : offsets[h + 1] - offsets[0]])
        for h in range(num_levels)
    ]
    sketch._counts = [0] * num_levels
    sketch.n = sum(int(level.size) << h for h, level in enumerate(sketch._levels))
    sketch.min, sketch.max = float(old.get_min_value()), float(old.get_max_value())
    sketch._exact = num_levels == 1 and sketch.n == old.n
    return sketch
