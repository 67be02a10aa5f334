"""spark-submit entry point: the same job as `mga-spark run`, on the cluster spark-submit gives.

    spark-submit --py-files mga_spark.zip jobs/mga_expand.py --config conf/gpu.yaml \
        --input s3://bucket/corpus/ --output s3://bucket/mga/

The master, executors and resources come from spark-submit; `job.master` in the config is ignored.
"""

from __future__ import annotations

import sys

import click

from mga_spark.cli import build_config, execute


def main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="mga_expand.py", description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--input", action="append")
    parser.add_argument("--output")
    parser.add_argument("--set", action="append", default=[])
    args = parser.parse_args(argv)
    from pathlib import Path

    from mga_spark.cli import _setup_logging

    _setup_logging()
    try:
        cfg = build_config(Path(args.config), args.input, args.output, args.set)
        return execute(cfg, use_config_master=False)
    except click.exceptions.Exit as e:  # a reported error (bad config, bad input): its code
        return e.exit_code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
