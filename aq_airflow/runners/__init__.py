"""How a step runs: in a Kubernetes pod (``kubernetes``) or as a local process (``local``)."""
