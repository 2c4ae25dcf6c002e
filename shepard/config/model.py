"""The flock file's model: frozen dataclasses, one per section of the seed's options.

Every field carries a :class:`Spec` (its documentation, the seed's cdk.json name, and its simple
constraints). The validator, the JSON Schema and docs/flock.md are all derived from these
classes, so a key cannot exist in one and be missing from another.

A loaded :class:`FlockConfig` is *resolved*: derived values (subnet CIDRs from the masks, the
availability zones, the compute environments from the seed's single-environment shorthand) are
filled in, so consumers never re-derive them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

# The values AWS accepts, stated once: Terraform's `validation` blocks must agree with these
# (tests/unit/config/test_terraform_agrees.py compares them).
NAME_PATTERN = r"^[a-z][a-z0-9-]{1,30}$"
REGION_PATTERN = r"^[a-z]{2}(-[a-z]+)+-[0-9]+$"
TABLE_NAME_PATTERN = r"^[a-zA-Z0-9_.-]{3,255}$"
# AWS resource names the flock may be given (buckets have their own, stricter rule).
RESOURCE_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"
BUCKET_PATTERN = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"
ECR_PATTERN = r"^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$"
CE_ID_PATTERN = r"^[a-z][a-z0-9-]{0,19}$"
VPC_ID_PATTERN = r"^vpc-[0-9a-f]{8,17}$"
SUBNET_ID_PATTERN = r"^subnet-[0-9a-f]{8,17}$"
# CloudWatch Logs' retention values (PutRetentionPolicy).
LOG_RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
)  # fmt: skip


@dataclass(frozen=True)
class Spec:
    """What the docs, the schema and the validator know about one key."""

    doc: str
    seed: str | None = None  # the seed's cdk.json parameter, when the key comes from the seed
    key: str | None = None  # the YAML key when it differs from the field name (``lambda``)
    minimum: int | None = None
    maximum: int | None = None
    pattern: str | None = None
    pattern_hint: str | None = None  # said instead of the regex in messages
    cidr: bool = False  # a string (or list of strings) that must be an IPv4 CIDR block
    choices: tuple[int, ...] | None = None  # allowed integers (log retention)
    internal: bool = False  # not a YAML key: set by the loader
    default_doc: str | None = None  # how the docs describe a derived default


def spec(default: Any = dataclasses.MISSING, **kwargs: Any) -> Any:
    """A dataclass field with a :class:`Spec`; a ``{}`` default becomes a factory."""
    meta = {"spec": Spec(**kwargs)}
    if isinstance(default, dict):
        value = default
        return field(default_factory=lambda: dict(value), metadata=meta)
    if default is dataclasses.MISSING:
        return field(metadata=meta)
    return field(default=default, metadata=meta)


def about(doc: str, **kwargs: Any) -> dict[str, Spec]:
    """Field metadata for a section (``field(default_factory=Section, metadata=about(...))``)."""
    return {"spec": Spec(doc=doc, **kwargs)}


def spec_of(f: dataclasses.Field[Any]) -> Spec:
    value = f.metadata.get("spec")
    if not isinstance(value, Spec):  # pragma: no cover - every field is declared with spec()
        raise TypeError(f"field {f.name} has no Spec")
    return value


def yaml_key(f: dataclasses.Field[Any]) -> str:
    return spec_of(f).key or f.name


@dataclass(frozen=True)
class RetryConfig:
    attempts: int = spec(
        3,
        doc="How many times AWS Batch runs a job in all (1 means no retry).",
        minimum=1,
        maximum=10,
    )
    retry_on_host_reclaim: bool = spec(
        True,
        doc="Retry a job whose instance was taken back (status reason `Host EC2*`, e.g. a Spot "
        "interruption); a job whose application fails is not retried.",
    )


@dataclass(frozen=True)
class JobExecutionConfig:
    allow_docker_daemon: bool = spec(
        False,
        seed="AllowJobsToAccessDockerDaemon",
        doc="Give the payload container the host's Docker socket (docker pull, docker load, ...). "
        "Off by default: only flocks that need Docker inside a job should turn it on.",
    )
    timeout_seconds: int = spec(
        86400,
        doc="A job still running after this many seconds is stopped by AWS Batch.",
        minimum=60,
    )
    retry: RetryConfig = field(
        default_factory=RetryConfig, metadata=about("The retry strategy of every job.")
    )
    checkpoint_interval: int = spec(
        0,
        doc="Minutes between uploads of a running job's CHECKPOINT_DIR to the outputs bucket "
        "(0: only when the job is interrupted: a Spot notice or SIGTERM). See worker/README.md.",
        minimum=0,
        maximum=1440,
    )


@dataclass(frozen=True)
class S3Config:
    inputs_bucket: str | None = spec(
        None,
        seed="InputsBucket",
        doc="Bucket that starts a job when a zip is dropped in it.",
        pattern=BUCKET_PATTERN,
        pattern_hint="an S3 bucket name (3-63 lowercase letters, digits, dots, hyphens)",
        default_doc="a name Terraform generates from the prefix `<name>-inputs-`",
    )
    outputs_bucket: str | None = spec(
        None,
        seed="OutputsBucket",
        doc="Bucket where the zips of job outputs land.",
        pattern=BUCKET_PATTERN,
        pattern_hint="an S3 bucket name (3-63 lowercase letters, digits, dots, hyphens)",
        default_doc="generated from `<name>-outputs-`",
    )
    errors_bucket: str | None = spec(
        None,
        seed="ErrorsBucket",
        doc="Bucket where a failed job's logs land as a zip.",
        pattern=BUCKET_PATTERN,
        pattern_hint="an S3 bucket name (3-63 lowercase letters, digits, dots, hyphens)",
        default_doc="generated from `<name>-errors-`",
    )
    quick_deploy_bucket: str | None = spec(
        None,
        seed="QuickDeployBucket",
        doc="Bucket of the quick-deploy folders (`QUICK_DEPLOY_DIRECTORY`).",
        pattern=BUCKET_PATTERN,
        pattern_hint="an S3 bucket name (3-63 lowercase letters, digits, dots, hyphens)",
        default_doc="generated from `<name>-quick-deploy-`",
    )
    force_destroy: bool = spec(
        False,
        doc="Let `destroy` delete buckets that still hold objects. Off: your results are kept.",
    )


@dataclass(frozen=True)
class DynamoDBConfig:
    table_name: str | None = spec(
        None,
        seed="TableName",
        doc="Name of the job table.",
        pattern=TABLE_NAME_PATTERN,
        pattern_hint="3-255 letters, digits, `_`, `-`, `.`",
        default_doc="`<name>-jobs`",
    )
    days_to_keep_failed_launch_indexes: int = spec(
        2,
        seed="DaysToKeepFailedLaunchIndexes",
        doc="Days a job record is kept when its job died before it could finish.",
        minimum=1,
    )
    days_to_keep_finished_jobs: int = spec(
        30,
        doc="Days a finished job's record is kept (the seed deleted it at once).",
        minimum=0,
    )


@dataclass(frozen=True)
class SecretsManagerConfig:
    secret_name: str | None = spec(
        None,
        seed="SecretsManagerName",
        doc="Name of the Secrets Manager secret whose files jobs get in `ROOT_INPUT_NAME/secrets`.",
        pattern=r"^[A-Za-z0-9/_+=.@-]{1,512}$",
        pattern_hint="letters, digits and /_+=.@-",
        default_doc="`<name>-secrets`",
    )


@dataclass(frozen=True)
class ComputeEnvironmentConfig:
    id: str = spec(
        doc="Short name of the environment; it keys the Terraform resources, so keep it stable.",
        pattern=CE_ID_PATTERN,
        pattern_hint="a lowercase letter, then up to 19 lowercase letters, digits or hyphens",
    )
    instance_types: tuple[str, ...] = spec(
        doc="Instance types, families or `optimal`.",
    )
    type: Literal["ec2", "spot"] = spec("ec2", doc="`ec2` (on-demand) or `spot`.")
    spot_bid_price_percent: int | None = spec(
        None,
        doc="Spot only: the most to pay, as a percentage of the on-demand price.",
        minimum=1,
        maximum=100,
    )
    gpu: bool = spec(False, doc="Use the GPU-enabled ECS image (for GPU instance types).")
    min_cpu: int = spec(0, doc="vCPUs kept running even with no jobs.", minimum=0)
    max_cpu: int | None = spec(
        None,
        doc="Most vCPUs of this environment.",
        minimum=1,
        default_doc="`batch.max_cpu`",
    )
    name: str | None = spec(
        None,
        doc="Name of the AWS Batch compute environment.",
        pattern=RESOURCE_NAME_PATTERN,
        pattern_hint="letters, digits, `_`, `-`, `.`",
        default_doc="generated from the prefix `<name>-<id>-`",
    )


@dataclass(frozen=True)
class BatchConfig:
    instance_types: tuple[str, ...] = spec(
        (),
        seed="InstanceTypes",
        doc="Instance types, families (`c5`) or `optimal` for the flock's one compute "
        "environment. Required unless `compute_environments` is given.",
    )
    instance_name: str | None = spec(
        None,
        seed="BatchInstanceNames",
        doc="Name tag of the sheep (the instances running jobs).",
        default_doc="`<name>-sheep`",
    )
    desired_ram: int = spec(
        7000,
        seed="DesiredRam",
        doc="MiB of memory each job gets. Keep it under ~90% of an instance's memory, or jobs "
        "never start.",
        minimum=4,
    )
    desired_cpu: int = spec(2, seed="DesiredCPU", doc="vCPUs each job gets.", minimum=1)
    gpus: int = spec(0, doc="GPUs each job gets (needs a GPU compute environment).", minimum=0)
    max_cpu: int = spec(
        256,
        seed="MaxCPU",
        doc="Most vCPUs running in the flock at once; lower it to cap throughput and cost.",
        minimum=1,
    )
    launch_template_name: str | None = spec(
        None,
        seed="LaunchTemplateName",
        doc="Name of the sheep's launch template.",
        pattern=RESOURCE_NAME_PATTERN,
        pattern_hint="letters, digits, `_`, `-`, `.`",
        default_doc="`<name>-sheep`",
    )
    compute_environment_name: str | None = spec(
        None,
        seed="ComputeEnvironmentName",
        doc="Name of the one compute environment (shorthand form).",
        pattern=RESOURCE_NAME_PATTERN,
        pattern_hint="letters, digits, `_`, `-`, `.`",
        default_doc="generated from the prefix `<name>-default-`",
    )
    compute_environment_type: Literal["ec2", "spot"] = spec(
        "ec2",
        seed="ComputeEnvironmentType",
        doc="`ec2` (on-demand) or `spot` for the one compute environment (shorthand form).",
        default_doc="`spot` when `spot_bid_price_percent` is set, else `ec2`",
    )
    spot_bid_price_percent: int | None = spec(
        None,
        seed="SpotBidPricePercent",
        doc="Spot bid as a percentage of the on-demand price; setting it makes the shorthand "
        "environment Spot, as in the seed.",
        minimum=1,
        maximum=100,
    )
    queue_name: str | None = spec(
        None,
        seed="QueueName",
        doc="Name of the job queue.",
        pattern=RESOURCE_NAME_PATTERN,
        pattern_hint="letters, digits, `_`, `-`, `.`",
        default_doc="`<name>-queue`",
    )
    job_definition_name: str | None = spec(
        None,
        seed="JobDefinitionName",
        doc="Name of the job definition.",
        pattern=RESOURCE_NAME_PATTERN,
        pattern_hint="letters, digits, `_`, `-`, `.`",
        default_doc="`<name>-job`",
    )
    ec2_key_pair: str | None = spec(
        None,
        seed="Ec2KeyPair",
        doc="An existing EC2 key pair, to SSH into sheep for debugging.",
    )
    ulimits_no_files_open: int = spec(
        1048576,
        seed="UlimitsNoFilesOpen",
        doc="Open-files limit (nofile) of job containers.",
        minimum=1024,
        maximum=1048576,
    )
    runnable_timeout_seconds: int = spec(
        3600,
        doc="A job stuck RUNNABLE this long (no compute environment can ever run it, or no "
        "capacity) is cancelled by the queue, with the reason in its Batch status.",
        minimum=600,
        maximum=86400,
    )
    update_job_timeout_minutes: int = spec(
        30,
        doc="Minutes running jobs get to finish when an update of the compute environments "
        "replaces the sheep.",
        minimum=1,
        maximum=360,
    )
    log_retention_days: int = spec(
        30,
        doc="Days the jobs' log group (`/aws/batch/<name>`) keeps its events.",
        choices=LOG_RETENTION_DAYS,
    )
    compute_environments: tuple[ComputeEnvironmentConfig, ...] = spec(
        (),
        doc="Several compute environments feeding the queue in the order listed (e.g. Spot "
        "first, then on-demand, then GPU). Replaces the single-environment keys above.",
        default_doc="one environment `default` built from `instance_types`, "
        "`compute_environment_type`, `spot_bid_price_percent`, `compute_environment_name` and "
        "`gpus`",
    )


@dataclass(frozen=True)
class SpotConfig:
    attempts: int | None = spec(
        None,
        doc="Spot reclaims a job takes on the Spot compute environments before it moves on "
        "(`then`). Unset: no ladder; a reclaimed job is retried as `job_execution.retry` says.",
        minimum=1,
        maximum=10,
        default_doc="none: no ladder",
    )
    then: Literal["on_demand"] = spec(
        "on_demand",
        doc="Where a job goes after `attempts` reclaims: `on_demand`, a second job queue over "
        "the flock's on-demand (`type: ec2`) compute environments, keeping the same job id.",
    )


@dataclass(frozen=True)
class OomConfig:
    retry: bool = spec(
        False,
        doc="Resubmit a job killed for memory (exit 137 with an out-of-memory reason) with its "
        "memory raised. Off by default: a leaking job would climb to the largest instance.",
    )
    factor: int = spec(
        2,
        doc="Each out-of-memory retry multiplies the job's memory by this.",
        minimum=2,
        maximum=8,
    )
    max_memory_mib: int | None = spec(
        None,
        doc="The most memory (MiB) a retry may ask for; never more than the largest instance "
        "type's usable memory.",
        minimum=4,
        default_doc="the largest instance type's usable memory",
    )


@dataclass(frozen=True)
class InstanceTagsConfig:
    project_name: str | None = spec(
        None, seed="ProjectName", doc="Value of the `Project` tag on every sheep."
    )
    team_name: str | None = spec(None, seed="TeamName", doc="Value of the `Team` tag.")
    contact_email: str | None = spec(None, seed="ContactEmail", doc="Value of the `Contact` tag.")
    workload_value: str | None = spec(
        None, seed="WorkloadValue", doc="Value of the `WorkloadType` tag."
    )


@dataclass(frozen=True)
class EcrConfig:
    repo_name: str | None = spec(
        None,
        seed="ECRRepoName",
        doc="Name of the ECR repository of the flock's images.",
        pattern=ECR_PATTERN,
        pattern_hint="lowercase letters, digits, and `._-/` separators",
        default_doc="`<name>`",
    )
    keep_images: int = spec(
        20,
        doc="How many images of each kind (payload, worker) the repository keeps; older ones "
        "expire. At least 2: jobs submitted before the last deploy may still pull the one "
        "before the newest.",
        minimum=2,
        maximum=10000,
    )


@dataclass(frozen=True)
class EfsConfig:
    create: bool = spec(False, seed="CreateEFS", doc="Create an EFS file system for the flock.")
    name: str | None = spec(
        None, seed="EFSName", doc="Name of the EFS file system.", default_doc="`<name>-efs`"
    )
    throughput: Literal["bursting", "elastic"] | int = spec(
        "bursting",
        seed="EFSThroughput",
        doc="`bursting`, `elastic`, or a number of MiB/s of provisioned throughput.",
        minimum=1,
        maximum=10240,
    )


@dataclass(frozen=True)
class LustreConfig:
    create: bool = spec(
        False, seed="CreateLustre", doc="Create an FSx for Lustre file system for the flock."
    )
    name: str | None = spec(
        None,
        seed="LustreName",
        doc="Name of the Lustre file system.",
        default_doc="`<name>-lustre`",
    )
    bucket_name: str | None = spec(
        None,
        seed="LustreBucketName",
        doc="Name of the S3 bucket created to back the Lustre file system.",
        pattern=BUCKET_PATTERN,
        pattern_hint="an S3 bucket name (3-63 lowercase letters, digits, dots, hyphens)",
    )
    storage_capacity: int = spec(
        1200,
        seed="LustreStorageCapacity",
        doc="GiB of storage: 1200, or a multiple of 2400.",
        minimum=1200,
    )
    existing_bucket: str | None = spec(
        None,
        seed="ExistingLustreBucket",
        doc="An existing bucket to back (and first fill) the Lustre file system instead.",
        pattern=BUCKET_PATTERN,
        pattern_hint="an S3 bucket name (3-63 lowercase letters, digits, dots, hyphens)",
    )
    deployment_type: Literal["SCRATCH_1", "SCRATCH_2", "PERSISTENT_1"] = spec(
        "SCRATCH_2", doc="FSx for Lustre deployment type."
    )


@dataclass(frozen=True)
class EbsConfig:
    size_of_root_disk: int = spec(
        30,
        seed="SizeOfRootDisk",
        doc="GiB of the sheep's encrypted root volume (at least 30, the ECS AMI's snapshot).",
        minimum=30,
        maximum=16384,
    )
    size_of_container_storage_disk: int = spec(
        50,
        seed="SizeOfContainerStorageDisk",
        doc="GiB of the sheep's encrypted container-storage volume.",
        minimum=1,
        maximum=16384,
    )


@dataclass(frozen=True)
class SqsConfig:
    name: str | None = spec(
        None,
        seed="SQSName",
        doc="Name of the queue of inputs-bucket events.",
        pattern=r"^[A-Za-z0-9_-]{1,80}$",
        pattern_hint="1-80 letters, digits, `_`, `-`",
        default_doc="`<name>-scheduler`",
    )
    max_receive_count: int = spec(
        5,
        doc="Deliveries of one event before it goes to the dead-letter queue.",
        minimum=1,
        maximum=1000,
    )
    visibility_timeout_seconds: int = spec(
        180,
        doc="Visibility timeout; must be at least `lambda.timeout_seconds`.",
        minimum=0,
        maximum=43200,
    )


@dataclass(frozen=True)
class SchedulerConfig:
    batch_size: int = spec(
        100,
        doc="Most zip-drop events the scheduler takes in one invocation; they fan in to one "
        "Batch array job (one SubmitJob). Above 10 needs `batching_window_seconds` of 1 or more.",
        minimum=1,
        maximum=10000,
    )
    batching_window_seconds: int = spec(
        1,
        doc="Seconds the queue gathers events before it invokes the scheduler with fewer than "
        "`batch_size`; a lone drop waits at most this long.",
        minimum=0,
        maximum=300,
    )


@dataclass(frozen=True)
class LambdaConfig:
    memory_size: int = spec(
        256,
        seed="LambdaMemorySize",
        doc="MiB of memory of the scheduler and API Lambdas.",
        minimum=128,
        maximum=10240,
    )
    timeout_seconds: int = spec(60, doc="Timeout of the Lambdas.", minimum=1, maximum=900)
    log_retention_days: int = spec(
        30, doc="Days the Lambdas' CloudWatch logs are kept.", choices=LOG_RETENTION_DAYS
    )


NetworkMode = Literal["public", "nat", "private"]


@dataclass(frozen=True)
class NetworkConfig:
    create_new_vpc: bool = spec(
        True,
        seed="CreateNewVPC",
        doc="Create a VPC for the flock; `false` uses `existing_vpc` and `existing_subnet_ids`.",
        default_doc="`true`, or `false` when `existing_vpc` is set",
    )
    environment_name: str | None = spec(
        None,
        seed="EnvironmentName",
        doc="Prefix of network resource names.",
        default_doc="`name`",
    )
    vpc_cidr: str = spec("10.0.0.0/16", seed="VpcCIDR", doc="CIDR of the new VPC.", cidr=True)
    public_subnet_cidrs: tuple[str, ...] = spec(
        (),
        seed="PublicSubnet1CIDR, PublicSubnet2CIDR",
        doc="One public subnet per availability zone, inside `vpc_cidr`.",
        cidr=True,
        default_doc="Terraform's: one sixteenth of `vpc_cidr` per zone after the first eight "
        "(`10.0.128.0/20`, `10.0.144.0/20`); `/vpc_cidr_mask_public` blocks when that is set",
    )
    private_subnet_cidrs: tuple[str, ...] = spec(
        (),
        seed="PrivateSubnet1CIDR, PrivateSubnet2CIDR",
        doc="One private subnet per availability zone, inside `vpc_cidr`.",
        cidr=True,
        default_doc="Terraform's: the first sixteenths of `vpc_cidr`, one per zone "
        "(`10.0.0.0/20`, `10.0.16.0/20`); `/vpc_cidr_mask_private` blocks when that is set",
    )
    vpc_cidr_mask_public: int | None = spec(
        None,
        seed="VPCCidrMaskPublic",
        doc="Prefix length of derived public subnets (the first free blocks of `vpc_cidr`).",
        default_doc="none: Terraform sizes them",
        minimum=16,
        maximum=28,
    )
    vpc_cidr_mask_private: int | None = spec(
        None,
        seed="VPCCidrMaskPrivate",
        doc="Prefix length of derived private subnets (the first free blocks of `vpc_cidr`).",
        default_doc="none: Terraform sizes them",
        minimum=16,
        maximum=28,
    )
    availability_zones: tuple[str, ...] = spec(
        (),
        doc="Availability zones of the subnets, one per subnet.",
        pattern=r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9][a-z]$",
        pattern_hint="an availability zone name such as us-east-1a",
        default_doc="the first 2 available zones of the region, looked up at plan time",
    )
    mode: Literal["public", "nat", "private"] | None = spec(
        None,
        doc="How sheep reach AWS and image registries: `public` (public subnets, a public IP "
        "each, a security group that admits nothing from outside; nothing billed while idle), "
        "`nat` (private subnets behind a NAT gateway, about $36 a month), or `private` "
        "(private subnets without internet; S3 and DynamoDB through free gateway endpoints, "
        "ECR, ECS, Logs, Secrets Manager and STS through interface endpoints billed per hour "
        "and zone). docs/cost.md compares them.",
        default_doc="`public`, or `nat` when `make_subnets_public: false` is given",
    )
    make_subnets_public: bool = spec(
        False,
        seed="MakeSubnetsPublic",
        doc="The seed's switch: `true` is `mode: public`, `false` is `mode: nat`.",
        default_doc="from `mode`",
    )
    allow_ssh: bool = spec(
        False,
        seed="AllowSSHAccessToCIDRToAllowSSHAccessTo",
        doc="Open port 22 of the sheep to `cidr_to_allow_ssh_access_to`.",
    )
    cidr_to_allow_ssh_access_to: str | None = spec(
        None,
        seed="CIDRToAllowSSHAccessTo",
        doc="CIDR allowed to SSH into the sheep when `allow_ssh` is true.",
        cidr=True,
    )
    existing_vpc: str | None = spec(
        None,
        seed="ExistingVPC",
        doc="ID of an existing VPC to use instead of creating one.",
        pattern=VPC_ID_PATTERN,
        pattern_hint="a VPC id such as vpc-0123456789abcdef0",
    )
    existing_vpc_cidr: str | None = spec(
        None,
        seed="ExistingVPCCidr",
        doc="CIDR of the existing VPC that sheep use.",
        cidr=True,
    )
    existing_subnet_ids: tuple[str, ...] = spec(
        (),
        seed="ExistingSubnetID1, ExistingSubnetID2, ExistingSubnetID3",
        doc="Subnets of the existing VPC for the sheep (one or more).",
        pattern=SUBNET_ID_PATTERN,
        pattern_hint="a subnet id such as subnet-0123456789abcdef0",
    )


@dataclass(frozen=True)
class StateConfig:
    backend: Literal["local", "s3", "cloud"] = spec(
        "local",
        doc="Where Terraform keeps the flock's state: `local` (the state folder), `s3` or "
        "`cloud` (Terraform Cloud / Enterprise).",
    )
    bucket: str | None = spec(
        None,
        doc="s3: the state bucket.",
        pattern=BUCKET_PATTERN,
        pattern_hint="an S3 bucket name (3-63 lowercase letters, digits, dots, hyphens)",
    )
    key: str | None = spec(
        None, doc="s3: the state object key.", default_doc="`shepard/<name>/terraform.tfstate`"
    )
    region: str | None = spec(
        None,
        doc="s3: the state bucket's region.",
        pattern=REGION_PATTERN,
        pattern_hint="an AWS region such as us-east-1",
        default_doc="`region`",
    )
    dynamodb_table: str | None = spec(None, doc="s3: a lock table (optional).")
    organization: str | None = spec(None, doc="cloud: the Terraform Cloud organization.")
    workspace: str | None = spec(None, doc="cloud: the workspace name.")
    hostname: str | None = spec(
        None, doc="cloud: the Terraform Cloud / Enterprise host.", default_doc="app.terraform.io"
    )


@dataclass(frozen=True)
class NotificationsConfig:
    emails: tuple[str, ...] = spec(
        (),
        doc="E-mail addresses told when a job fails and when a batch completes (each confirms "
        "its subscription from the e-mail SNS sends).",
    )
    https_endpoints: tuple[str, ...] = spec(
        (),
        doc="`https://` URLs that get the same messages as JSON (SNS's HTTPS delivery; each "
        "must confirm the subscription).",
    )


@dataclass(frozen=True)
class EncryptionConfig:
    kms_key: Literal["aws_managed", "flock"] = spec(
        "aws_managed",
        doc="The keys that encrypt the flock's data at rest. `aws_managed`: each service's AWS "
        "managed or AWS owned key (S3 SSE-S3, DynamoDB and ECR defaults, SQS SSE-SQS, "
        "`aws/secretsmanager`, `aws/elasticfilesystem`, `alias/aws/sns`): no key to pay for. "
        "`flock`: one customer managed KMS key of the flock ($1 a month) encrypts them all, "
        "with its own key policy and every use in CloudTrail. An existing flock applied "
        "before this key keeps its data readable only with `flock` "
        "(docs/decisions/0011-aws-managed-keys.md).",
    )


@dataclass(frozen=True)
class LocalConfig:
    command: tuple[str, ...] = spec(
        (),
        doc="The payload's command as a list of strings (overrides the image's command; "
        "needed when jobs run as plain processes without Docker).",
    )
    code_dir: str | None = spec(
        None,
        doc="The deployment folder's `code/` (with the Dockerfile), relative to the flock file.",
        default_doc="`code` beside the flock file, when it exists",
    )
    runner: Literal["auto", "docker", "process"] = spec(
        "auto",
        doc="How jobs run: `docker` (the payload image), `process` (`command` as a plain "
        "process), or `auto` (Docker when an engine answers, else a process).",
    )
    max_parallel_jobs: int = spec(
        2, doc="Jobs the local flock runs at once.", minimum=1, maximum=64
    )


@dataclass(frozen=True)
class FlockConfig:
    name: str = spec(
        doc="The flock's name: prefix of every resource (the seed's stack name).",
        pattern=NAME_PATTERN,
        pattern_hint="a lowercase letter, then 1-30 lowercase letters, digits or hyphens",
    )
    region: str = spec(
        doc="AWS region of the flock.",
        pattern=REGION_PATTERN,
        pattern_hint="an AWS region such as us-east-1",
    )
    target: Literal["aws", "local"] = spec(
        "aws", doc="`aws`, or `local`: the flock runs on this machine against an emulator."
    )
    resource_tags: Mapping[str, str] = spec(
        {}, seed="ResourceTags", doc="Tags on every resource of the flock."
    )
    job_execution: JobExecutionConfig = field(
        default_factory=JobExecutionConfig, metadata=about("How jobs run.")
    )
    s3: S3Config = field(default_factory=S3Config, metadata=about("The flock's buckets."))
    dynamodb: DynamoDBConfig = field(
        default_factory=DynamoDBConfig, metadata=about("The job table.")
    )
    secrets_manager: SecretsManagerConfig = field(
        default_factory=SecretsManagerConfig, metadata=about("The secrets store.")
    )
    batch: BatchConfig = field(
        default_factory=BatchConfig, metadata=about("AWS Batch: sheep, compute, queue, jobs.")
    )
    spot: SpotConfig = field(
        default_factory=SpotConfig,
        metadata=about("What happens to a job Spot keeps reclaiming: the ladder to on-demand."),
    )
    oom: OomConfig = field(
        default_factory=OomConfig,
        metadata=about("Retries of a job killed for memory, with its memory raised."),
    )
    instance_tags: InstanceTagsConfig = field(
        default_factory=InstanceTagsConfig, metadata=about("Tags on every sheep.")
    )
    ecr: EcrConfig = field(default_factory=EcrConfig, metadata=about("The image repository."))
    efs: EfsConfig = field(
        default_factory=EfsConfig, metadata=about("An optional EFS file system.")
    )
    lustre: LustreConfig = field(
        default_factory=LustreConfig, metadata=about("An optional FSx for Lustre file system.")
    )
    ebs: EbsConfig = field(default_factory=EbsConfig, metadata=about("The sheep's volumes."))
    sqs: SqsConfig = field(
        default_factory=SqsConfig,
        metadata=about("The queue between the inputs bucket and the scheduler."),
    )
    scheduler: SchedulerConfig = field(
        default_factory=SchedulerConfig,
        metadata=about("How zip drops fan in to array jobs (the queue's event source mapping)."),
    )
    lambda_: LambdaConfig = field(
        default_factory=LambdaConfig,
        metadata=about("The scheduler and job-batching API Lambdas.", key="lambda"),
    )
    extra_iam_policy: Mapping[str, Any] | None = spec(
        None,
        seed="ExtraIAMPolicyForContainerRole",
        doc="An IAM policy document (a mapping with `Statement`) added to the jobs' role.",
    )
    network: NetworkConfig = field(
        default_factory=NetworkConfig, metadata=about("The VPC and subnets.")
    )
    state: StateConfig = field(
        default_factory=StateConfig, metadata=about("Where Terraform state lives.")
    )
    local: LocalConfig = field(
        default_factory=LocalConfig, metadata=about("Settings of a `target: local` flock only.")
    )
    encryption: EncryptionConfig = field(
        default_factory=EncryptionConfig,
        metadata=about("Encryption at rest: whose keys."),
    )
    notifications: NotificationsConfig = field(
        default_factory=NotificationsConfig,
        metadata=about(
            "Who is told when a job fails and when a batch completes: an SNS topic "
            "(KMS-encrypted) with these subscribers; none when both lists are empty."
        ),
    )
    # Set by the loader, not YAML keys.
    warnings: tuple[str, ...] = spec((), doc="Warnings found while validating.", internal=True)
    source: str = spec("<string>", doc="The flock file the config came from.", internal=True)


SECTIONS: tuple[type[Any], ...] = (
    JobExecutionConfig,
    S3Config,
    DynamoDBConfig,
    SecretsManagerConfig,
    BatchConfig,
    SpotConfig,
    OomConfig,
    InstanceTagsConfig,
    EcrConfig,
    EfsConfig,
    LustreConfig,
    EbsConfig,
    SqsConfig,
    SchedulerConfig,
    LambdaConfig,
    NetworkConfig,
    StateConfig,
    LocalConfig,
    NotificationsConfig,
    EncryptionConfig,
)
