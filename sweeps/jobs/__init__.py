"""The jobs a sweep can run, one module or package each, registered on import
(:func:`sweeps.job.jobs` imports every module here). ``moments`` is shared by jobs that
summarise draws."""
