"""The project's metadata is in pyproject.toml. This file lists its packages (``alfine`` with every subpackage
under lib/alfine, and ``alfine_tools``) and declares the optional C modules ``alfine._labels``
(lib/alfine/segmentation/kernels.py uses it) and ``alfine._agglomeration`` (lib/alfine/postprocess/agglomeration.py
and merging.py): built where a C compiler is found, left out (numpy or Python then does their work) where none
is."""

from setuptools import Extension, find_packages, setup

setup(
    packages=["alfine", *(f"alfine.{name}" for name in find_packages("lib/alfine")), "alfine_tools"],
    ext_modules=[Extension(f"alfine.{name}", [f"lib/alfine/{name}.c"], depends=["lib/alfine/_buffers.h"], optional=True)
                 for name in ("_labels", "_agglomeration")],
)
