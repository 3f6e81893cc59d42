"""Cluster benchmark (python -m bench.cluster, or bench/run-cluster): see __main__.py."""
