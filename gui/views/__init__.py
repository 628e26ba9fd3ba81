"""The explorer's views. Each takes the model (``gui.state.ExplorerState``) in its
constructor and redraws from it in ``refresh()``, called by the window's timer."""
