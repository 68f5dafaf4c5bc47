"""encode_set() writes what it wrote when it measured the gaps form before writing it."""

import random

from catalogue.search import static


def reference(docnums: list[int], n: int) -> str:
    limit = n // 6 + 2
    if len(docnums) + 1 <= limit and static._gaps_length(docnums) <= limit:
        out, previous = [], -1
        for d in docnums:
            gap, previous = d - previous, d
            while gap >= 32:
                out.append(static._SET_DIGITS[32 | (gap & 31)])
                gap >>= 5
            out.append(static._SET_DIGITS[gap])
        gaps = "d" + "".join(out)
        if len(gaps) <= limit:
            return gaps
    return None  # the bitmap form


def test_encode_set_as_before():
    rng = random.Random(11)
    for n in (1, 7, 100, 5000, 40_000, 3_000_000):
        for k in (0, 1, 2, 3, n // 1000, n // 100, n // 10, n // 2, n):
            if k > 200_000:
                continue
            docnums = sorted(rng.sample(range(n), min(k, n)))
            encoded = static.encode_set(docnums, n)
            assert static.decode_set(encoded) == docnums
            expected = reference(docnums, n)
            if expected is not None:
                assert encoded == expected, (n, k)
            else:
                assert encoded[0] == "b"
    # Gaps beyond the table of usual gaps, beside small ones.
    docnums = [0, 1, 40_000, 40_031, 1_500_000, 2_999_999]
    assert static.encode_set(docnums, 3_000_000) == reference(docnums, 3_000_000)
    assert static.decode_set(static.encode_set(docnums, 3_000_000)) == docnums
