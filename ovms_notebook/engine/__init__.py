"""Running one graph: the native MediaPipe graph, the Python graph engine, and the hybrid of both."""
