"""latentsky: the library behind the latentsky Snakemake workflow.

Every module here is free of Snakemake, so tests call the functions directly; the rule scripts in
``workflow/scripts/`` are thin wrappers that read ``snakemake.input``/``params`` and call into it.
"""

__version__ = "0.1.0"
