# Hostile reward programs are data for tests/sandbox/test_sandbox.py, never modules:
# importing one (as --doctest-modules would) could run its attack.
collect_ignore_glob = ["*.py"]
