"""The alfine commands: one module per command, a thin shell over the ``alfine`` library."""
