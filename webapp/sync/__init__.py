"""Sync history, 'Sync now', conflict review and the Procore webhook receiver."""
