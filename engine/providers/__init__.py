"""Model backends behind one Provider protocol: simulated and OpenAI-compatible."""
