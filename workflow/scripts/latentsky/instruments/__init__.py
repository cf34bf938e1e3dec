"""Instruments: readers of each instrument's files (THEMIS imagers, ASIM MMIA, CHAIN receivers)."""
