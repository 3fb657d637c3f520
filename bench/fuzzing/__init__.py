"""Bad input, fuzzed: generated files (``cases``), the properties each must keep (``properties``), and a long
campaign over them in fresh processes (``campaign``, ``python -m bench fuzz``). The suite runs the same properties
with a fixed budget (tests/test_fuzz.py)."""
