"""Reading lksweep's Parquet tables with pandas, and the figures and report drawn from them.

Needs only the tables and their metadata (no torch, no Ray, no job module)::

    import analysis
    df = analysis.load("results/paper", "discrepancy", cell="gru", k=[5, 10])
"""
from .tables import NoData, load

__all__ = ["NoData", "load"]
