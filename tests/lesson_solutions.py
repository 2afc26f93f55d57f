"""The answers to the lessons' exercises (cells tagged `exercise`, named in their metadata), and a wrong one each.

tests/test_notebooks.py fills the blank `answer = ...` of each exercise with these and checks that the cell
calls the right one right and the wrong one wrong.
"""

SOLUTIONS: dict[str, object] = {
    "third_stream": [7, 8],
    "mixed": [0, 10, 11, 40, 41],
    "default_handler": [2, 3],
    "flow_limited": [0, 6],
    "longest_cut": 5,
    "smallest_input": "face_detection_short_range",
}

WRONG: dict[str, object] = {
    "third_stream": [8, 9],
    "mixed": [0, 10, 1, 40, 2],
    "default_handler": [2, 3, 3],
    "flow_limited": [0, 1, 2, 3, 4, 5, 6],
    "longest_cut": 6,
    "smallest_input": "pose_detection",
}
