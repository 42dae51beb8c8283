"""The test kit: cells built by hand and participants stepped by hand, shared by every test.

``cells``: a ``CellSpec`` of the reference assembly cell built directly (no
loader) and helpers to drive an agent; ``supervisor``: a supervisor stepped
tick by tick with scripted robots and a scripted world. One copy each,
imported; the fakes they use are the packages' own (``robots.fakes``).
"""
