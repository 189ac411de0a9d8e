"""``python -m aq_airflow.runtime --function package.module:function``: the command of a python
step (``runtime.step``); ``python -m aq_airflow.runtime --command -- argv...``: a command step's
when its code package is shipped (``runtime.code.run_command``, which needs no pyarrow table code)."""

import sys

from aq_airflow.runtime import contract

if sys.argv[1:2] == [contract.COMMAND_FLAG]:
    from aq_airflow.runtime.code import run_command

    sys.exit(run_command(sys.argv[2:]))

from aq_airflow.runtime.step import main

sys.exit(main(sys.argv[1:]))
