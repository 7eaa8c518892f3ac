"""wslab: learn, teach and experiment with real-time WebSocket systems."""
__version__ = "0.1.0"
