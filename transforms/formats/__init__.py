"""Byte formats and file systems: every reader and writer of bytes on disk (no Beam)."""
