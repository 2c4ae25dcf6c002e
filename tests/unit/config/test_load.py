"""Loading flock files: resolved values, line numbers, messages, and what the loader refuses."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from shepard.config import FlockConfig, FlockError, load_flock, parse_flock
from shepard.errors import BadInput

ROOT = Path(__file__).resolve().parents[3]
MINIMAL = "name: demo\nregion: us-east-1\nbatch:\n  instance_types: [m5.large]\n"


def parse(text: str) -> FlockConfig:
    return parse_flock(textwrap.dedent(text), "flock.yaml")


def issues(text: str) -> list[str]:
    with pytest.raises(FlockError) as caught:
        parse(text)
    return [str(issue) for issue in caught.value.issues]


def test_minimal_flock_gets_the_contract_defaults() -> None:
    config = parse(MINIMAL)
    assert (config.name, config.region, config.target) == ("demo", "us-east-1", "aws")
    assert config.state.backend == "local"
    assert config.batch.desired_cpu == 2 and config.batch.desired_ram == 7000
    assert config.job_execution.retry.attempts == 3
    assert config.job_execution.retry.retry_on_host_reclaim is True
    assert config.job_execution.allow_docker_daemon is False
    assert config.ebs.size_of_root_disk == 30
    (env,) = config.batch.compute_environments
    assert (env.id, env.type, env.instance_types, env.gpu) == (
        "default",
        "ec2",
        ("m5.large",),
        False,
    )
    network = config.network
    assert network.create_new_vpc is True
    assert network.environment_name == "demo"
    assert network.availability_zones == ()  # looked up by terraform/flock
    # Left to terraform/modules/network, which sizes them from vpc_cidr and max_cpu.
    assert (network.public_subnet_cidrs, network.private_subnet_cidrs) == ((), ())
    assert (network.vpc_cidr_mask_public, network.vpc_cidr_mask_private) == (None, None)
    assert config.batch.runnable_timeout_seconds == 3600
    assert config.batch.update_job_timeout_minutes == 30
    assert config.batch.log_retention_days == 30


def test_config_is_frozen() -> None:
    config = parse(MINIMAL)
    with pytest.raises(AttributeError):
        config.name = "other"  # type: ignore[misc]


def test_spot_bid_makes_the_shorthand_environment_spot_as_in_the_seed() -> None:
    config = parse(MINIMAL + "  spot_bid_price_percent: 70\n")
    (env,) = config.batch.compute_environments
    assert (env.type, env.spot_bid_price_percent) == ("spot", 70)
    assert config.batch.compute_environment_type == "spot"


def test_gpu_instance_types_select_the_gpu_image() -> None:
    config = parse("name: demo\nregion: us-east-1\nbatch:\n  instance_types: [g5.xlarge]\n")
    assert config.batch.compute_environments[0].gpu is True


def test_subnets_are_derived_from_masks_and_zones() -> None:
    config = parse(
        MINIMAL
        + textwrap.dedent(
            """\
        network:
          vpc_cidr: 172.16.0.0/20
          vpc_cidr_mask_public: 26
          vpc_cidr_mask_private: 22
          availability_zones: [us-east-1c, us-east-1d, us-east-1f]
          mode: nat
        """
        )
    )
    n = config.network
    assert n.public_subnet_cidrs == ("172.16.0.0/26", "172.16.0.64/26", "172.16.0.128/26")
    # The first /22 holds the public subnets, so private subnets start at the second one.
    assert n.private_subnet_cidrs == ("172.16.4.0/22", "172.16.8.0/22", "172.16.12.0/22")


def test_a_vpc_too_small_for_its_subnets_is_an_error() -> None:
    small = MINIMAL + "  max_cpu: 16\nnetwork:\n  vpc_cidr: 10.0.0.0/24\n  mode: nat\n"
    # Terraform's public subnets (one sixteenth each) take 10.0.0.128/28 and 10.0.0.144/28.
    assert issues(small + "  vpc_cidr_mask_private: 25\n") == [
        "network.vpc_cidr: 10.0.0.0/24 has no room for 2 private /25 subnets; widen it (line 7)"
    ]
    assert issues(MINIMAL + "network:\n  vpc_cidr: 10.0.0.0/25\n") == [
        "network.vpc_cidr: 10.0.0.0/25 is too small for the subnets Terraform carves (one "
        "sixteenth of it per zone, and AWS subnets are /28 or wider); use a /24 or wider VPC, "
        "or give network.public_subnet_cidrs (line 6)"
    ]


def test_subnets_not_given_are_left_to_terraform_and_given_ones_are_kept() -> None:
    given = parse(
        MINIMAL
        + "network:\n  public_subnet_cidrs: [10.0.200.0/24, 10.0.201.0/24]\n"
        + "  availability_zones: [us-east-1a, us-east-1b]\n"
    )
    assert given.network.public_subnet_cidrs == ("10.0.200.0/24", "10.0.201.0/24")
    assert given.network.private_subnet_cidrs == ()
    # A given subnet must miss the blocks Terraform carves for the other role.
    assert issues(MINIMAL + "network:\n  public_subnet_cidrs: [10.0.0.0/24, 10.0.201.0/24]\n") == [
        "network.public_subnet_cidrs[0]: 10.0.0.0/24 overlaps Terraform's private subnet "
        "10.0.0.0/20 (line 6)"
    ]


def test_sheep_subnets_too_small_for_max_cpu_are_an_error() -> None:
    public = MINIMAL + "  max_cpu: 256\nnetwork:\n  make_subnets_public: true\n"
    # The seed's /28 holds 3 sheep after AWS's and the flock's addresses; 256 vCPUs are 128.
    # Derived /28s take the first blocks that miss Terraform's private /20s (10.0.0.0/19).
    assert issues(public + "  vpc_cidr_mask_public: 28\n") == [
        "network.vpc_cidr_mask_public: the public subnets 10.0.32.0/28, 10.0.32.16/28 hold "
        "fewer addresses than the 128 sheep the compute environments may start (the sheep run "
        "there); give larger ones, or leave out public_subnet_cidrs and vpc_cidr_mask_public to "
        "let Terraform size them (line 8)"
    ]
    assert parse(public).network.public_subnet_cidrs == ()  # Terraform's /20s hold them
    assert issues(public + "  vpc_cidr: 10.0.0.0/24\n")[0].startswith(
        "network.vpc_cidr: the public subnets 10.0.0.128/28, 10.0.0.144/28 hold fewer"
    )


def test_existing_vpc_turns_off_the_new_vpc_and_a_contradiction_is_an_error() -> None:
    existing = (
        "network:\n  existing_vpc: vpc-0123456789abcdef0\n"
        "  existing_subnet_ids: [subnet-0123456789abcdef0]\n"
    )
    assert parse(MINIMAL + existing).network.create_new_vpc is False
    assert issues(MINIMAL + existing + "  create_new_vpc: true\n") == [
        "network.create_new_vpc: true, but network.existing_vpc is set; set create_new_vpc: "
        "false to use the existing VPC, or remove existing_vpc (line 8)"
    ]


def test_state_backend_defaults_are_resolved() -> None:
    s3 = parse(MINIMAL + "state:\n  backend: s3\n  bucket: my-tf-state\n").state
    assert (s3.key, s3.region) == ("shepard/demo/terraform.tfstate", "us-east-1")
    cloud = parse(
        MINIMAL + "state:\n  backend: cloud\n  organization: acme\n  workspace: w\n"
    ).state
    assert cloud.hostname == "app.terraform.io"


def test_errors_come_in_file_order_and_carry_the_file_name() -> None:
    text = "region: nowhere\nname: Bad!\nbatch:\n  instance_types: [zz9.large]\n  max_cpu: 0\n"
    with pytest.raises(FlockError) as caught:
        parse_flock(text, "flocks/prod.yaml")
    lines = [issue.line for issue in caught.value.issues]
    assert lines == [1, 2, 4, 5]
    assert caught.value.message.startswith("while reading flock file flocks/prod.yaml: 4 problems:")
    assert caught.value.message.endswith(
        "Fix them and run again (docs/flock.md describes every key)."
    )


def test_enum_values_are_matched_in_any_case_and_stored_canonically() -> None:
    config = parse(
        MINIMAL + "  compute_environment_type: Spot\nlustre:\n  deployment_type: persistent_1\n"
    )
    assert config.batch.compute_environment_type == "spot"
    assert config.lustre.deployment_type == "PERSISTENT_1"


def test_efs_throughput_is_a_mode_or_mibps() -> None:
    assert parse(MINIMAL + "efs:\n  throughput: 128\n").efs.throughput == 128
    assert parse(MINIMAL + "efs:\n  throughput: Elastic\n").efs.throughput == "elastic"
    assert issues(MINIMAL + "efs:\n  throughput: [1]\n") == [
        "efs.throughput: must be one of bursting, elastic, or an integer from 1 to 10240, "
        "got a list (line 6)"
    ]


def test_null_values_mean_the_default() -> None:
    config = parse(MINIMAL + "s3:\ndynamodb:\n  table_name:\n")
    assert config.dynamodb.table_name is None
    assert config.s3.force_destroy is False


def test_yaml_merge_keys_and_anchors_work() -> None:
    config = parse(
        """\
        name: demo
        region: us-east-1
        batch:
          compute_environments:
            - &base {id: spot, type: spot, instance_types: [c5.large], max_cpu: 64}
            - <<: *base
              id: backup
              type: ec2
        """
    )
    spot, backup = config.batch.compute_environments
    assert (backup.id, backup.type, backup.instance_types, backup.max_cpu) == (
        "backup",
        "ec2",
        ("c5.large",),
        64,
    )
    assert spot.type == "spot"


def test_tag_values_may_be_numbers_but_not_lists() -> None:
    assert parse(MINIMAL + "resource_tags:\n  cost-center: 4711\n").resource_tags == {
        "cost-center": "4711"
    }
    assert issues(MINIMAL + "resource_tags:\n  team: [a]\n") == [
        "resource_tags.team: must be a string, got a list (line 6)"
    ]


def test_not_yaml_is_one_clear_error() -> None:
    with pytest.raises(BadInput) as caught:
        parse_flock("name: demo\nbatch:\n  instance_types: [c5.large\n", "broken.yaml")
    message = caught.value.message
    assert message.startswith("while reading flock file broken.yaml: it is not valid YAML at line")
    assert "Fix the syntax" in message


@pytest.mark.parametrize("text", ["", "- a\n- b\n", "just a string\n"])
def test_a_file_that_is_not_a_mapping_is_refused(text: str) -> None:
    with pytest.raises(
        BadInput, match=r"not a mapping of keys\. Start from examples/flocks/minimal\.yaml"
    ):
        parse_flock(text, "x.yaml")


def test_missing_file_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="no such file"):
        load_flock(tmp_path / "nope.yaml")


def test_code_dir_is_resolved_beside_the_flock_file(tmp_path: Path) -> None:
    (tmp_path / "code").mkdir()
    flock = tmp_path / "flock.yaml"
    flock.write_text(MINIMAL + "target: local\n")
    assert load_flock(flock).local.code_dir == str(tmp_path / "code")
    flock.write_text(MINIMAL + "target: local\nlocal:\n  code_dir: src\n")
    config = load_flock(flock)
    assert config.local.code_dir == str(tmp_path / "src")
    assert config.warnings == (f"local.code_dir: {tmp_path / 'src'} is not a folder",)


def test_testing_setup_example_loads() -> None:
    config = load_flock(ROOT / "examples" / "testing-setup" / "flock.yaml")
    assert config.target == "local"
    assert config.local.code_dir is not None and config.local.code_dir.endswith("code")


def test_importing_the_config_package_does_not_import_boto3() -> None:
    code = "import sys, shepard.config; print('boto3' in sys.modules or 'botocore' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
