"""The command-line face of kafkalike (``kafkalike ...``). Nothing imports this package."""
