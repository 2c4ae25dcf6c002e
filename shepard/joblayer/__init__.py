"""The shared job layer: job requests, job records, Batch submission, status transitions.

It depends on boto3 alone (and the standard library), so it is packaged as it is into the Lambda
zips and the worker image. Nothing here imports another part of ``shepard`` but
``shepard.joblayer``.
"""
