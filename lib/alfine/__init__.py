"""alfine: train and apply segmentation models on huge microscopy volumes, block by block.

The library is imported by the command-line tools in ``alfine_tools``; its modules import
heavy dependencies lazily or only where they are needed (torch only in the training and
export wings), so every tool's ``--help`` is instant and the slim image runs without torch.
"""

__version__ = "0.1.0"
