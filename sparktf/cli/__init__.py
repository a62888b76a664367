"""The ``sparktf`` command line: ``infer``, ``export`` and ``inspect``."""
