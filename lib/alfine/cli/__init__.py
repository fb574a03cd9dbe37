"""The command-line conventions every tool shares: flags, option groups, parsing and running a command (imports
argparse-dataclass and the library's light modules, never numpy or the wings that do the work)."""

from . import flags
from .flags import REQUIRED, flag
from .options import BlockwiseOptions, OutputOptions
from .runner import Common, UsageError, parse_options, run

__all__ = ["REQUIRED", "BlockwiseOptions", "Common", "OutputOptions", "UsageError", "flag", "flags",
           "parse_options", "run"]
