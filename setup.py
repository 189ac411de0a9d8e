"""Packages are found, not listed, so a new package can never be left out of the wheel.

setup.cfg holds everything else; only this list needs code: ``templates/`` (a top-level folder
of the repo) ships as ``aq_airflow.templates``, which ``find_packages`` cannot name.
"""

from setuptools import find_packages, setup

setup(packages=[*find_packages(include=["aq_airflow", "aq_airflow.*"]), "aq_airflow.templates"])
