"""Example outside methods for aetbench (see ``methods.py`` and ``recon.py``)."""
