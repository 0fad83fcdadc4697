"""The Procore set-up wizard: five steps, staged manual tables, the first import."""
