"""Jobs: what each command does, as a library call with explicit arguments (``jobs/<command>.py``).

A job composes the library's wings (volumes, blockwise, tasks, postprocess, segmentation, inference,
training, validation, evaluation); ``tools/<command>.py`` only parses flags, calls its job and reports.
Nothing else in the library imports ``jobs``.
"""
