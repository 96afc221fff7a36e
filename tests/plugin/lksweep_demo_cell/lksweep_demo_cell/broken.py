"""A plugin module that cannot be imported: lksweep warns once and runs without it."""
raise ImportError("lksweep_demo_cell.broken fails on purpose")
