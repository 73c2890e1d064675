"""Released numbers are rounded to the cent in one numpy call, exactly as value-by-value rounding did."""

from __future__ import annotations

import numpy as np

from cityscreen.privacy.gate import shown_numbers


def test_array_rounding_matches_rounding_each_numpy_value_bit_for_bit() -> None:
    rng = np.random.default_rng(2)
    values = np.concatenate(
        [
            rng.uniform(-1e6, 1e6, 5_000),
            np.round(rng.uniform(0, 1e4, 5_000), 3),  # ties at the third decimal
            np.arange(-50, 50) / 1000 + 0.005,  # halves around zero, negative zeros after rounding
            [0.0, -0.0, 0.005, -0.005, 1e-300, 2.675, 1.005, 123456789.125],
        ]
    )
    got = shown_numbers(values)
    want = [float(round(v, 2)) for v in values]
    assert np.array(got).tobytes() == np.array(want).tobytes()
    assert all(type(x) is float for x in got)
