"""The reader: from raw bytes to a decision, through a chain of named checks."""
