"""Agents that are not model calls: the scripted strategies."""
