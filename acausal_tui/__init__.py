"""The terminal app and command line over the engine."""
