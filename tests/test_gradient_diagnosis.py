"""Naming the pattern of a wrong gradient: each pattern is named where it applies and only there."""

import numpy as np
import pytest

from grader.checking.gradcheck import slice_indices
from grader.checking.gradient_diagnosis import Sizes, constant_factor, describe_factor, patterns, worst_elements


def numeric_gradient(shape=(4, 6), seed=0):
    """A gradient with no zeros and no symmetry, away from 0 so that every pattern is clear."""
    rng = np.random.default_rng(seed)
    return rng.uniform(0.5, 2.0, shape) * rng.choice([-1.0, 1.0], shape)


def joined(found):
    return "\n".join(found)


CLAIMS = {
    "factor": "times the numeric gradient",
    "sign": "wrong sign",
    "transpose": "transpose",
    "zeros": "all zeros",
    "zero where not": "it is 0 at",
    "nonzero": "nonzero at",
    "first": "only the first position",
    "last": "only the last position",
    "stride": "only every",
}


def assert_only(found, *claims):
    """`found` makes each of `claims` (keys of CLAIMS) and none of the others."""
    text = joined(found)
    for key, phrase in CLAIMS.items():
        if key in claims:
            assert phrase in text, f"expected {phrase!r} in {found}"
        else:
            assert phrase not in text, f"unexpected {phrase!r} in {found}"


# --- a correct gradient -------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(5,), (4, 6), (2, 3, 4)])
def test_a_correct_gradient_has_no_pattern(shape):
    n = numeric_gradient(shape)
    assert patterns(n.copy(), n) == []
    assert patterns(n * (1 + 1e-6), n, Sizes.of(N=shape[0])) == []  # within the pattern tolerance


def test_all_zero_gradients_agree():
    assert patterns(np.zeros((3, 3)), np.zeros((3, 3))) == []


# --- constant factors ---------------------------------------------------------------------------

def test_a_factor_1_over_n_is_named_with_the_batch_size():
    n = numeric_gradient((4, 5))
    found = patterns(n / 4, n, Sizes.of(N=4))
    assert len(found) == 1
    assert "every element is 1/N (N = 4) times the numeric gradient" in found[0]
    assert "a scale factor is missing or extra" in found[0]
    assert_only(found, "factor")


def test_a_factor_n_is_named_with_the_batch_size():
    n = numeric_gradient((4, 5))
    found = patterns(4 * n, n, Sizes.of(N=4))
    assert found == ["every element is N (N = 4) times the numeric gradient: a scale factor is missing or extra"]
    assert "1/N" not in found[0]


def test_without_sizes_a_factor_of_the_batch_size_has_no_name():
    n = numeric_gradient((4, 5))
    found = patterns(n / 4, n)
    assert found == ["every element is 0.25 times the numeric gradient"]


@pytest.mark.parametrize("factor, name", [(2.0, "2"), (0.5, "1/2")])
def test_factors_2_and_one_half_are_named(factor, name):
    n = numeric_gradient((3, 5))
    found = patterns(factor * n, n, Sizes.of(N=3))
    assert found == [f"every element is {name} times the numeric gradient: a scale factor is missing or extra"]
    assert "N" not in found[0]


def test_a_factor_without_a_name_is_given_as_a_number():
    n = numeric_gradient((4, 5))
    found = patterns(0.37 * n, n, Sizes.of(N=4))
    assert found == ["every element is 0.37 times the numeric gradient"]
    assert "scale factor is missing" not in found[0]


def test_the_wrong_sign_everywhere_is_named_as_a_sign_not_a_factor():
    n = numeric_gradient((4, 5))
    found = patterns(-n, n, Sizes.of(N=4))
    assert found == ["every element has the wrong sign"]
    assert_only(found, "sign")


def test_a_negative_factor_other_than_minus_1_is_a_factor():
    n = numeric_gradient((4, 5))
    found = patterns(-n / 4, n, Sizes.of(N=4))
    assert found == ["every element is -1/N (N = 4) times the numeric gradient: a scale factor is missing or extra"]


# --- structure ----------------------------------------------------------------------------------

def test_the_transpose_of_a_square_matrix_is_named():
    n = numeric_gradient((5, 5))
    found = patterns(n.T.copy(), n, Sizes.of(N=5))
    assert found == ["it is the transpose of the numeric gradient"]
    assert_only(found, "transpose")


def test_all_zeros_is_named_and_nothing_else():
    n = numeric_gradient((4, 6))
    found = patterns(np.zeros_like(n), n, Sizes.of(N=4))
    assert found == ["it is all zeros: no gradient reaches this input"]


def test_zero_where_the_numeric_gradient_is_not():
    n = numeric_gradient((5, 7))
    a = n.copy()
    a[0, 0] = a[3, 5] = a[4, 1] = 0.0
    found = patterns(a, n)
    assert any(f.startswith("it is 0 at 3 of 35 elements where the numeric gradient is not") for f in found), found
    assert "all zeros" not in joined(found) and "nonzero at" not in joined(found)
    assert "times the numeric" not in joined(found) and "transpose" not in joined(found)


def test_nonzero_where_the_numeric_gradient_is_0():
    n = numeric_gradient((5, 7))
    n[1, 2] = n[4, 6] = 0.0
    a = n.copy()
    a[1, 2], a[4, 6] = 0.3, -1.1
    found = patterns(a, n)
    assert any(f.startswith("it is nonzero at 2 element(s) that do not affect the output") for f in found), found
    assert "it is 0 at" not in joined(found) and "times the numeric" not in joined(found)


def test_some_elements_with_the_wrong_sign():
    n = numeric_gradient((5, 7))
    a = n.copy()
    a[2, 3], a[0, 6] = -a[2, 3], -a[0, 6]
    found = patterns(a, n)
    assert "2 of 35 elements have the wrong sign, the others are right" in found
    assert "every element has the wrong sign" not in found


def test_a_gradient_wrong_in_other_ways_at_the_wrong_elements_is_not_a_sign_error():
    n = numeric_gradient((5, 7))
    a = n.copy()
    a[2, 3] *= 3
    a[0, 6] *= 0.5
    assert "wrong sign" not in joined(patterns(a, n))


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_only_the_first_position_along_an_axis(axis):
    n = numeric_gradient((4, 5, 6))
    a = n.copy()
    index = [slice(None)] * 3
    index[axis] = 0
    a[tuple(index)] *= 2
    found = patterns(a, n)
    assert found == [f"only the first position along axis {axis} is wrong"]


@pytest.mark.parametrize("axis", [0, 1])
def test_only_the_last_position_along_an_axis(axis):
    n = numeric_gradient((5, 6))
    a = n.copy()
    index = [slice(None)] * 2
    index[axis] = -1
    a[tuple(index)] += 1.0
    found = patterns(a, n)
    assert found == [f"only the last position along axis {axis} is wrong"]
    assert "first" not in found[0]


def test_one_corner_is_the_first_position_along_both_axes():
    n = numeric_gradient((5, 6))
    a = n.copy()
    a[0, 0] += 1.0
    assert patterns(a, n) == ["only the first position along axis 0 is wrong",
                              "only the first position along axis 1 is wrong"]


def test_an_axis_of_2_names_no_position():
    n = numeric_gradient((2, 6))
    a = n.copy()
    a[0, 1:5] += 1.0
    text = joined(patterns(a, n))
    assert "along axis 0" not in text


@pytest.mark.parametrize("stride, offset", [(2, 0), (2, 1), (3, 0), (3, 2)])
def test_every_kth_position_along_an_axis(stride, offset):
    n = numeric_gradient((4, 12))
    a = n.copy()
    a[:, offset::stride] *= 1.5
    found = patterns(a, n)
    assert len(found) == 1, found
    assert found[0].startswith(f"only every {stride}")
    assert f"along axis 1 (index {offset} of each group of {stride}" in found[0]
    assert "first" not in found[0] and "last" not in found[0]


def test_an_error_everywhere_names_no_position():
    n = numeric_gradient((4, 12))
    a = n + 0.5
    assert_only(patterns(a, n))


def test_every_4th_position_is_named_as_every_4th():
    n = numeric_gradient((4, 12))
    a = n.copy()
    a[:, ::4] *= 1.5
    found = patterns(a, n)
    assert len(found) == 1 and found[0].startswith("only every 4th position along axis 1"), found


def test_a_single_wrong_position_in_the_middle_is_not_every_kth():
    n = numeric_gradient((4, 12))
    a = n.copy()
    a[:, 5] *= 1.5
    assert "only every" not in joined(patterns(a, n))


@pytest.mark.parametrize("stride, ordinal", [(2, "2nd"), (3, "3rd")])
def test_the_stride_is_written_as_an_ordinal(stride, ordinal):
    n = numeric_gradient((4, 12))
    a = n.copy()
    a[:, ::stride] *= 1.5
    assert f"only every {ordinal} position" in joined(patterns(a, n))


@pytest.mark.parametrize("seed", range(5))
def test_random_noise_makes_no_factor_sign_or_transpose_claim(seed):
    rng = np.random.default_rng(100 + seed)
    n = rng.standard_normal((6, 6))
    for a in (rng.standard_normal((6, 6)), n + 0.3 * rng.standard_normal((6, 6))):
        text = joined(patterns(a, n, Sizes.of(N=6)))
        for phrase in ("times the numeric", "wrong sign", "transpose", "all zeros"):
            assert phrase not in text, text


# --- describe_factor, constant_factor, worst_elements ------------------------------------------

@pytest.mark.parametrize("factor, sizes, name", [
    (0.25, Sizes.of(N=4), "1/N (N = 4)"),
    (4.0, Sizes.of(N=4), "N (N = 4)"),
    (8.0, Sizes.of(N=4), "2N (N = 4)"),
    (0.125, Sizes.of(N=4), "1/(2N) (N = 4)"),
    (-0.25, Sizes.of(N=4), "-1/N (N = 4)"),
    (-4.0, Sizes.of(N=4), "-N (N = 4)"),
    (2.0, Sizes(), "2"),
    (0.5, Sizes(), "1/2"),
    (-1.0, Sizes(), "-1 (the wrong sign)"),
    (-2.0, Sizes(), "-2"),
    (-0.5, Sizes(), "-1/2"),
    (2.0, Sizes.of(N=2), "2 = N (N = 2)"),
    (0.5, Sizes.of(N=2), "1/2 = 1/N (N = 2)"),
    (0.25002, Sizes.of(N=4), "1/N (N = 4)"),  # within 1e-3 relative
    (1 / 3, Sizes.of(N=3, C=5), "1/N (N = 3)"),
    (0.2, Sizes.of(N=3, C=5), "1/C (C = 5)"),
])
def test_describe_factor_names(factor, sizes, name):
    assert describe_factor(factor, sizes) == name


@pytest.mark.parametrize("factor, sizes", [(0.37, Sizes.of(N=4)), (0.26, Sizes.of(N=4)), (3.0, Sizes()),
                                           (1.0, Sizes.of(N=4)), (0.25, Sizes())])
def test_describe_factor_without_a_name(factor, sizes):
    assert describe_factor(factor, sizes) is None


def test_a_size_of_1_names_nothing():
    assert Sizes.of(N=1, C=3) == Sizes((("C", 3),))
    assert describe_factor(1.0, Sizes.of(N=1)) is None


def test_constant_factor():
    n = numeric_gradient((3, 4))
    assert constant_factor(3 * n, n) == pytest.approx(3.0)
    assert constant_factor(-n, n) == pytest.approx(-1.0)
    assert constant_factor(n.copy(), n) is None  # a factor of 1 is no error
    assert constant_factor(n * (1 + 1e-4), n) is None
    a = 2 * n
    a[0, 0] = n[0, 0]
    assert constant_factor(a, n) is None
    assert constant_factor(n, np.zeros_like(n)) is None


def test_worst_elements_are_ordered_by_the_size_of_the_difference():
    a = np.array([[1.0, 2.0], [3.0, 4.0]])
    n = np.array([[1.0, 2.5], [0.0, 4.1]])
    index_of = list(np.ndindex(2, 2))
    assert worst_elements(a, n, index_of) == ["[1, 0]: analytic 3, numeric 0", "[0, 1]: analytic 2, numeric 2.5",
                                              "[1, 1]: analytic 4, numeric 4.1"]
    assert worst_elements(a, n, index_of, count=1) == ["[1, 0]: analytic 3, numeric 0"]


def test_worst_elements_leave_out_equal_elements_and_use_the_given_indices():
    a = np.array([1.0, 2.0, 3.0, 4.0])
    n = np.array([1.0, 2.0, 3.25, 4.0])
    assert worst_elements(a, n, [(0, 7), (0, 8), (0, 9), (1, 0)]) == ["[0, 9]: analytic 3, numeric 3.25"]
    assert worst_elements(a, a.copy(), [(i,) for i in range(4)]) == []


def test_worst_elements_use_6_significant_digits():
    a, n = np.array([0.123456789, 1e-9]), np.array([-1234567.0, 0.0])
    assert worst_elements(a, n, [(0,), (1,)]) == ["[0]: analytic 0.123457, numeric -1.23457e+06",
                                                  "[1]: analytic 1e-09, numeric 0"]


def test_ties_keep_the_order_of_the_elements():
    a, n = np.array([1.0, 2.0, 3.0]), np.array([0.0, 1.0, 2.0])
    assert [w.split(":")[0] for w in worst_elements(a, n, [(0,), (1,), (2,)])] == ["[0]", "[1]", "[2]"]


# --- the slice checked element by element ------------------------------------------------------

@pytest.mark.parametrize("shape, block", [
    ((2, 3, 8, 8), (slice(0, 1), slice(0, 1), slice(0, 8), slice(0, 8))),
    ((10, 10), (slice(0, 6), slice(0, 10))),
    ((50, 10), (slice(0, 6), slice(0, 10))),
    ((1000,), (slice(0, 64),)),
    ((3,), (slice(0, 3),)),
    ((10, 100), (slice(0, 1), slice(0, 64))),
])
def test_slice_indices(shape, block):
    got, flat = slice_indices(shape)
    assert got == block
    grid = np.arange(int(np.prod(shape))).reshape(shape)
    np.testing.assert_array_equal(flat, grid[block])
    assert flat.size <= 64


@pytest.mark.parametrize("shape", [(2, 3, 8, 8), (10, 10), (50, 10), (1000,), (3,), (7, 9, 9), (64, 3, 32, 32)])
def test_a_slice_is_a_contiguous_block_keeping_whole_trailing_axes(shape):
    block, flat = slice_indices(shape)
    assert flat.size <= 64 and flat.size >= 1
    assert all(s.start == 0 for s in block)
    # Every axis after the first partly taken one is whole; every axis before it is a single index.
    partial = [i for i, (s, size) in enumerate(zip(block, shape)) if s.stop < size]
    if partial:
        last_partial = partial[-1]
        assert all(block[i].stop == shape[i] for i in range(last_partial + 1, len(shape)))
        assert all(block[i].stop == 1 for i in range(last_partial))
    # Contiguous in memory order: the flat indices are consecutive.
    np.testing.assert_array_equal(flat.ravel(), np.arange(flat.size))
