"""The data and its files: the mp75 skeleton (layout), THE preprocessing, the clip store,
landmark recordings, model metadata, events, atomic writes, the npy checks and
SkelmtlError. Everything else in skelmtl builds on these.

May import: numpy and the standard library only, and nothing else of edge, so that a
trainer, a calibration step or a reader of a clip store needs nothing more.
"""
