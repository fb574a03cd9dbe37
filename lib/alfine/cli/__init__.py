"""The command-line conventions every tool shares (imports only the standard library)."""

from . import flags
from .flags import REQUIRED, flag
from .options import BlockwiseOptions, OutputOptions
from .runner import Common, UsageError, parse_options, run

__all__ = ["REQUIRED", "BlockwiseOptions", "Common", "OutputOptions", "UsageError", "flag", "flags",
           "parse_options", "run"]
