"""Every background run (imports, push, sync, checks): one lifecycle for every kind.

kinds.py names the kinds and the reasons a run stops; queueing.py is the leaf that talks to
RQ; service.py starts runs (one guard) and answers what runs there are; runner.py executes
a run once, whatever its kind.
"""
