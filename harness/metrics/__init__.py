"""Metrics computed from what a run recorded: operation histories and fault timelines."""
