"""Text in the real tools' formats, and pictures. Takes results, never backends."""
