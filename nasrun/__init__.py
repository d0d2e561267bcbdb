"""nasrun: a Hydra-driven runner for Neural Architecture Search experiments."""

__version__ = "0.1.0"
