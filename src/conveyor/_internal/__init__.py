"""Private helpers shared by every layer: ids, hashing, lazy imports."""
