import sys

from aq_airflow.cli.main import main

sys.exit(main())
