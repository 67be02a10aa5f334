"""spark-submit entry point of `mga-spark verify --spark`: the same checks and JSON line, on the
cluster spark-submit gives (for outputs too large to verify on one host).

    spark-submit --py-files mga_spark.zip jobs/mga_verify.py s3://bucket/mga/

Exit 0 only if every input document is accounted for exactly once; 1 with the problems on stderr.
"""

from __future__ import annotations

import argparse
import sys

from mga_spark.job.logs import setup_logging
from mga_spark.tools.verify_spark import verify_spark


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="mga_verify.py", description=__doc__.splitlines()[0])
    parser.add_argument("output", help="output URI")
    args = parser.parse_args(argv)
    setup_logging()
    from pyspark.sql import SparkSession

    result = verify_spark(args.output, spark=SparkSession.builder.getOrCreate())
    print(result.line())
    for problem in result.problems:
        print(f"problem: {problem}", file=sys.stderr)
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
