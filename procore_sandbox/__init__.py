"""A local stand-in for Procore (OAuth server, REST API, rate limits, faults, webhooks).

A separate app: it never imports webapp, and webapp reaches it only over HTTP.
"""
