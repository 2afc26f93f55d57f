"""The Python graph engine: the `Calculator` contract and a scheduler with MediaPipe's rules."""
