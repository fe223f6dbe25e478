"""edge-et: Extract+Think on your device (the public API is written here)."""
