"""The visual architecture explorer: a PySide6 + pyqtgraph window on a running Machine.

The machine runs in a worker thread (``worker.py``); the GUI talks to it through one
object, ``facade.MachineFacade`` (as Ripes' ProcessorHandler), and redraws from a
timer (``window.py``), never per guest event. Views (``views/``) take their model,
``state.ExplorerState``, in their constructor and can be tested one by one. What the
diagram shows, and where each event happened, is data (``layouts.py``, ``places.py``).
"""
