"""Axis letters: the one place where a numpy layer's layout ("NCHW", "NFT") meets Keras's ("NHWC", "NTF").

A layout names each axis of an array by a letter, batch first: N batch, C or F features (channels), H W
spatial, T time. Moving an array from one layout to another is a transpose by letters:

    move(x, "NCHW", "NHWC") = x.transpose(0, 2, 3, 1)
"""
import numpy as np

from .errors import InputError, show

LETTERS = set("NCFHWT")


def checked(layout, ndim, what="layout"):
    """`layout` as a string of `ndim` distinct axis letters starting with N, or an InputError echoing it."""
    if not isinstance(layout, str) or len(layout) != ndim or len(set(layout)) != ndim or not set(layout) <= LETTERS \
            or layout[0] != "N":
        raise InputError(f"{what} {show(layout)} does not name the {ndim} axes of the input: expected {ndim} "
                         f"distinct letters of {''.join(sorted(LETTERS))}, batch (N) first, e.g. "
                         f"{'NCHW' if ndim == 4 else 'NFT' if ndim == 3 else 'NF'}")
    return layout


def _features(letters):
    """C and F both name the feature axis: compare them as one letter."""
    return letters.replace("C", "F")


def axes(source, target):
    """The transpose that takes an array laid out as `source` to `target`; an InputError when they do not
    name the same axes."""
    s, t = _features(source), _features(target)
    if sorted(s) != sorted(t):
        raise InputError(f"layout {source!r} and Keras's {target!r} name different axes; expected a reordering "
                         f"of {target!r}")
    return tuple(s.index(letter) for letter in t)


def move(array, source, target):
    """`array` laid out as `source`, moved to `target` (a view when possible)."""
    if array is None or source == target:
        return array
    return np.transpose(array, axes(source, target))
