"""The worker runtime: what runs inside every Batch job of a flock.

It claims the job record, makes the job's folders, fetches the inputs, the quick-deploy folder and
the secrets, runs the payload (a sibling container, or a process for the local flock) under the
seed's environment, zips the outputs to the outputs bucket (or the logs to the errors bucket), and
cleans up. Run it as ``python -m shepard_worker``; its environment is docs/contracts.md section 4.
"""
