"""The tuner (chunk length and overlap from short clips, a model of memory and time) and the pool-size
arithmetic. Uses :mod:`bench.measuring`."""
