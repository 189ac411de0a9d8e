"""The artifact store that the runtime, the operators, the warehouse adapters and the client
share: its layout, the manifests that commit an output (and record its digests), the commit
protocol, the filesystems (a local folder or an object store), items of a map and the values
written as files. pyarrow and the standard library only, never Airflow."""
