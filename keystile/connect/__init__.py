"""``keystile connect``: what a coding agent needs to use keystile, printed or merged into its files.

``agents`` says, per agent, which environment variables and config-file settings point it at a
gateway (pure: a ``Target`` in, a ``Setup`` out); ``files`` merges those settings into the files
an agent already has, without touching anything else, and keeps a backup of what it changes.
"""

from keystile.connect.agents import AGENTS, KEY_VARIABLE, Setup, Target, setup_for
from keystile.connect.files import write_setup

__all__ = ["AGENTS", "KEY_VARIABLE", "Setup", "Target", "setup_for", "write_setup"]
