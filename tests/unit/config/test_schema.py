"""The JSON Schema and the docs reference are generated from the model and kept current."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from shepard.config.convert import seed_index
from shepard.config.schema import (
    BEGIN,
    DOCS_PATH,
    END,
    SCHEMA_PATH,
    flock_schema,
    reference_markdown,
    render_schema,
)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
GOOD = sorted((HERE / "good").glob("*.yaml")) + sorted((ROOT / "examples").rglob("flock*.yaml"))
GOOD += sorted((ROOT / "examples" / "flocks").glob("*.yaml"))
# Bad files whose problem is in one key alone: the schema must refuse them too.
SCHEMA_BAD = [
    "unknown_key",
    "negative_max_cpu",
    "bool_as_string",
    "bad_name",
    "missing_name",
    "bad_region",
    "spot_bid_range",
    "bad_enum",
    "bad_target",
    "seed_key",
    "small_root_disk",
    "list_not_string",
    "bad_cidr",
]
# Every parameter of the seed's "Flock Configuration Options" (shepard-readme.md).
SEED_PARAMETERS = [
    "ResourceTags",
    "AllowJobsToAccessDockerDaemon",
    "InputsBucket",
    "OutputsBucket",
    "ErrorsBucket",
    "QuickDeployBucket",
    "TableName",
    "SecretsManagerName",
    "BatchInstanceNames",
    "DesiredRam",
    "DesiredCPU",
    "MaxCPU",
    "InstanceTypes",
    "LaunchTemplateName",
    "ComputeEnvironmentName",
    "ComputeEnvironmentType",
    "QueueName",
    "JobDefinitionName",
    "Ec2KeyPair",
    "UlimitsNoFilesOpen",
    "SpotBidPricePercent",
    "ProjectName",
    "TeamName",
    "ContactEmail",
    "WorkloadValue",
    "ECRRepoName",
    "CreateEFS",
    "EFSName",
    "EFSThroughput",
    "CreateLustre",
    "LustreName",
    "LustreBucketName",
    "LustreStorageCapacity",
    "ExistingLustreBucket",
    "SizeOfRootDisk",
    "SizeOfContainerStorageDisk",
    "SQSName",
    "LambdaMemorySize",
    "DaysToKeepFailedLaunchIndexes",
    "ExtraIAMPolicyForContainerRole",
    "CreateNewVPC",
    "EnvironmentName",
    "VpcCIDR",
    "PublicSubnet1CIDR",
    "PublicSubnet2CIDR",
    "PrivateSubnet1CIDR",
    "PrivateSubnet2CIDR",
    "CIDRToAllowSSHAccessTo",
    "AllowSSHAccessToCIDRToAllowSSHAccessTo",
    "MakeSubnetsPublic",
    "VPCCidrMaskPrivate",
    "VPCCidrMaskPublic",
    "ExistingVPC",
    "ExistingVPCCidr",
    "ExistingSubnetID1",
    "ExistingSubnetID2",
    "ExistingSubnetID3",
]

REGENERATE = "run .venv/bin/python -m shepard.config.schema and commit the result"


def _validator() -> jsonschema.protocols.Validator:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return jsonschema.Draft202012Validator(schema)


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def test_committed_schema_is_current() -> None:
    assert SCHEMA_PATH.read_text(encoding="utf-8") == render_schema(), REGENERATE


def test_schema_is_valid_draft_2020_12() -> None:
    schema = flock_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["required"] == ["name", "region"]
    assert "lambda" in schema["properties"] and "warnings" not in schema["properties"]


def test_docs_reference_is_current() -> None:
    text = DOCS_PATH.read_text(encoding="utf-8")
    generated = text[text.index(BEGIN) + len(BEGIN) : text.index(END)]
    assert generated == "\n\n" + reference_markdown() + "\n", REGENERATE


def test_every_seed_parameter_has_a_key() -> None:
    index = seed_index()
    missing = [name for name in SEED_PARAMETERS if name.lower() not in index]
    assert not missing
    assert index["maxcpu"] == "batch.max_cpu"
    assert index["existingsubnetid3"] == "network.existing_subnet_ids"
    docs = DOCS_PATH.read_text(encoding="utf-8")
    assert all(name in docs for name in SEED_PARAMETERS)


@pytest.mark.parametrize("path", sorted(set(GOOD)), ids=lambda p: p.stem)
def test_good_flocks_validate_against_the_schema(path: Path) -> None:
    errors = [e.message for e in _validator().iter_errors(_load(path))]
    assert errors == []


@pytest.mark.parametrize("name", SCHEMA_BAD)
def test_schema_refuses_single_key_mistakes(name: str) -> None:
    assert list(_validator().iter_errors(_load(HERE / "bad" / f"{name}.yaml")))
