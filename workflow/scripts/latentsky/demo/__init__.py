"""Seeded generators of demo and benchmark data in the real archives' layouts and formats.

Nothing in the pipeline imports these: they write files that the pipeline then reads like real
data (a mirror of the archives, a folder of MMIA FITS files, stream0 minute files)."""
