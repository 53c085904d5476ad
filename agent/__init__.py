"""The tirmath agent: prompts, backends, the TIR loop, answers, votes and `solve`."""

__version__ = "0.1.0"
