"""`python -m bench --help` from the checkout's root (bench/cli.py)."""

from bench.cli import main

main()
