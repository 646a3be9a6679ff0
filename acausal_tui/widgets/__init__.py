"""Widgets of the run screen and the browser."""
