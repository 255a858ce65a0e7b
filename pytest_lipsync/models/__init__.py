"""Model weights: the registry of released files, finding and fetching them, and loading them safely."""
