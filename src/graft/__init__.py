"""graft: SFT and RL with verifiable rewards in one training loop."""

__version__ = "0.1.0"
