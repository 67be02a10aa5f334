"""`mga-spark evaluate`: the configured model over the shipped evaluation set, in one process.

dataset.py (the set, its splits, a user's labelled items) -> corrupt.py (the unfaithful items)
-> calibrate.py (the judge stage over them) and stages.py (the run's pipeline over the
documents) -> metrics.py (balanced accuracy, verdicts, --fail-under) -> report.py (files);
command.py ties them together.
"""
