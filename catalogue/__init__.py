"""catalogue: the public catalogue of the actions de formation validated by the Carif-Oref network."""

__version__ = "0.1.0"
