"""stembridge engine (Qt-free; importing it never imports torch)."""
__version__ = "0.1.0"
