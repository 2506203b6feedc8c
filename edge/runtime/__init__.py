"""Landmarks to events: the streaming parts (rate converter, ring buffer, schedule,
smoothing, hysteresis), the task router, the Pipeline that ties the front end, a backend
and these together (the public API), and its outputs (publishers and the overlay video).

May import: edge.core, edge.engine, edge.backends, edge.frontend; pyzmq and OpenCV inside
the functions that need them.
"""
