"""The experiment engine: pure async, never imports textual, rich or acausal_tui."""
