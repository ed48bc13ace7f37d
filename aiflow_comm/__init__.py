"""aiflow-comm: split inference over wireless links: codecs, channels, split-point search."""

__version__ = "0.1.0"
