"""The calculator library: OVMS's and MediaPipe's calculators the mediapipe wheel lacks, in Python."""
