"""The main job's machinery: which suites exist, running them in pytest, following progress."""
