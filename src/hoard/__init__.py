"""hoard: archive large volumes of local files into object storage and bring them back."""

__version__ = "0.1.0"
FORMAT_VERSION = "1"
