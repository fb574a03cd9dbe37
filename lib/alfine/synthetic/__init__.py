"""The synthetic EM-like volume: :mod:`.generator` makes any block of it (a pure function of world position and
seed), :mod:`.writer` writes a whole volume blockwise (the ``alfine-synthesize`` job)."""

from .generator import VERSION, SyntheticParams, generate_block

__all__ = ["VERSION", "SyntheticParams", "generate_block"]
