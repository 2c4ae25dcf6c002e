"""The flock file (flock.yaml): its model, loading with line numbers, validation, JSON Schema.

``load_flock(path)`` and ``parse_flock(text, source_name)`` return a resolved, frozen
:class:`FlockConfig` or raise :class:`FlockError` (a ``shepard.errors.BadInput``) that names the
key path and line of every problem. Importing this package is cheap: PyYAML and the standard
library only (no boto3).
"""

from __future__ import annotations

from shepard.config.loader import FlockError, load_flock, parse_flock
from shepard.config.model import (
    BatchConfig,
    ComputeEnvironmentConfig,
    DynamoDBConfig,
    EbsConfig,
    EcrConfig,
    EfsConfig,
    FlockConfig,
    InstanceTagsConfig,
    JobExecutionConfig,
    LambdaConfig,
    LocalConfig,
    LustreConfig,
    NetworkConfig,
    RetryConfig,
    S3Config,
    SecretsManagerConfig,
    SqsConfig,
    StateConfig,
)

__all__ = [
    "BatchConfig",
    "ComputeEnvironmentConfig",
    "DynamoDBConfig",
    "EbsConfig",
    "EcrConfig",
    "EfsConfig",
    "FlockConfig",
    "FlockError",
    "InstanceTagsConfig",
    "JobExecutionConfig",
    "LambdaConfig",
    "LocalConfig",
    "LustreConfig",
    "NetworkConfig",
    "RetryConfig",
    "S3Config",
    "SecretsManagerConfig",
    "SqsConfig",
    "StateConfig",
    "load_flock",
    "parse_flock",
]
