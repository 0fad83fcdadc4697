"""Time cards to Procore: sync badges, per-entry detail, Retry, and the pre-send check."""
