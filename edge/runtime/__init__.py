"""Landmarks to events: the streaming parts (rate converter, ring buffer, schedule,
smoothing, hysteresis), the task router, the Pipeline that ties the front end, a backend
and these together (the public API), its outputs (publishers and the overlay video), the
frame loop a run drives it with (loop), and labelled clips replayed and scored against
their truth (replay).

May import: edge.core, edge.engine, edge.backends, edge.frontend; pyzmq and OpenCV inside
the functions that need them.
"""
