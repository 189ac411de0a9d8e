"""``python -m aq_airflow.runtime --function package.module:function``: the command of a step."""

import sys

from aq_airflow.runtime.step import main

sys.exit(main(sys.argv[1:]))
