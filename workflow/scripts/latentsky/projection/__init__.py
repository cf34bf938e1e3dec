"""Projection of all-sky frames onto a grid at an emission altitude (a precomputed sparse operator)."""
