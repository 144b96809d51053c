"""MemoryHub tests."""
