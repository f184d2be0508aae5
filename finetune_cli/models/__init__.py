"""Backbones (backbones.py: where the weights come from), the per-family layout table (families.py:
where methods insert and what they target) and the tiny random models of each family (tiny.py)."""
