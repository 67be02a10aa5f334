"""spark-submit entry point: the same job as `mga-spark run`, on the cluster spark-submit gives.

    spark-submit --py-files mga_spark.zip jobs/mga_expand.py --config conf/gpu.yaml \
        --input s3://bucket/corpus/ --output s3://bucket/mga/

The master, executors and resources come from spark-submit; `job.master` in the config is ignored.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mga_spark.job.logs import setup_logging
from mga_spark.job.run import USER_ERRORS, build_config, execute
from mga_spark.job.spark import SparkRunner


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="mga_expand.py", description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--input", action="append")
    parser.add_argument("--output")
    parser.add_argument("--set", action="append", default=[])
    args = parser.parse_args(argv)
    setup_logging()  # everything on stderr: the driver's log, where spark-submit puts it
    try:
        cfg = build_config(Path(args.config), args.input, args.output, args.set)
        result = execute(cfg, SparkRunner(use_config_master=False))
    except USER_ERRORS as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(result.summary()))
    for line in result.problems():
        print(line, file=sys.stderr)
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
