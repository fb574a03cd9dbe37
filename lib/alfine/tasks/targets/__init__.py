"""Targets: pure numpy functions from labels to what a network learns, with where it is known."""
