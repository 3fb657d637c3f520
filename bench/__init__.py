"""audionorm-lab's benchmark harness: every figure from a fresh, measured subprocess.

The library never imports this package; this package imports the library.
"""
