"""``python -m gui``: the same as ``sandbox-gui``."""
import sys

from gui.app import main

sys.exit(main())
