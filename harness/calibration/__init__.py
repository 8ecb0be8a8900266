"""Calibration: the same code run N times, to show how often gates and `compare` are wrong.

A/A: identical runs -> how often the gates pass, how often `compare` between consecutive runs
stays clean. A/B: a deliberately slowed target (a test-only knob read by a wrapper target,
never an edited report) -> how often `compare` catches it. See docs/gates-and-noise.md.
"""
