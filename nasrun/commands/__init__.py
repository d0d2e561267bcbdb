"""The `nasrun-*` commands, one module each: argument parsing, the one-line error exit, log setup.
They call the library (nasrun.experiment, nasrun.evaluation, nasrun.reports, ...); nothing imports them.

    nasrun                 search.py        nasrun-reproduce   reproduce.py     nasrun-resume  resume.py
    nasrun-train           train.py         nasrun-export      export.py        nasrun-benchmark benchmark.py
    nasrun-compare         compare.py       nasrun-report      report.py        nasrun-latency-table latency_table.py
"""

from nasrun.machine import prepare_openmp

prepare_openmp()  # before any command loads torch: OpenMP reads its wait policy once, at that moment
