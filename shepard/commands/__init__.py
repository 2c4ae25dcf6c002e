"""The commands of ``shepard-tf``: one module per group, each handler ``(Context) -> int``.

:class:`Context` is what ``main()`` hands every command: the parsed flags, the environment, the
console, the profile store, the resolved settings (flag > profile > environment) and, built on
first use, the AWS access layer. Handlers import their heavy modules themselves.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from shepard.console import Console
from shepard.errors import BadInput
from shepard.profiles import ProfileStore, Settings

if TYPE_CHECKING:
    from shepard.aws.flock import Aws
    from shepard.aws.session import AwsSettings


@dataclass
class Context:
    args: argparse.Namespace
    env: Mapping[str, str]
    console: Console
    store: ProfileStore
    settings: Settings
    parser: argparse.ArgumentParser
    sleep: Callable[[float], None] = time.sleep
    _aws: Any = field(default=None, repr=False)

    @classmethod
    def create(
        cls,
        args: argparse.Namespace,
        *,
        env: Mapping[str, str],
        parser: argparse.ArgumentParser,
        stdin: IO[str] | None = None,
        stdout: IO[str] | None = None,
        stderr: IO[str] | None = None,
    ) -> Context:
        console = Console.for_streams(env, out=stdout, err=stderr, inp=stdin)
        store = ProfileStore.from_env(env)
        name: str | None = getattr(args, "profile", None) or store.current()
        profile: Mapping[str, str] = {}
        if name:
            if getattr(args, "profile", None) or store.exists(name):
                profile = store.load(name)
            else:
                console.note(
                    f"note: the current profile {name!r} no longer exists;"
                    " run `shepard-tf set_profile NAME` or `shepard-tf clear_profile_config`."
                )
                name = None
        flags = {k: v for k, v in vars(args).items() if v is not None}
        return cls(
            args=args,
            env=env,
            console=console,
            store=store,
            settings=Settings(flags=flags, profile=profile, env=env, profile_name=name),
            parser=parser,
        )

    def flag(self, name: str, default: Any = None) -> Any:
        return getattr(self.args, name, default)

    def aws_settings(self) -> AwsSettings:
        from shepard.aws.session import AwsSettings, role_arn

        role = None
        dont_assume = self.flag("dont_assume", True)
        role_name = self.settings.get("role_to_assume_to_target_account")
        if dont_assume is False:
            if not role_name:
                raise BadInput(
                    "while assuming a role: --dont_assume False needs a role. Pass"
                    " --role_to_assume_to_target_account (and --account_number), or set"
                    " shepard_role_to_assume_to_target_account in the profile."
                )
            role = role_arn(self.settings.get("account_number"), role_name)
        return AwsSettings(
            config_dir=self.store.root,
            env=self.env,
            region=self.settings.get("region"),
            aws_profile=self.flag("aws_profile"),
            endpoint_url=self.settings.get("endpoint_url"),
            lambda_endpoint_url=self.settings.get("lambda_endpoint_url"),
            role_arn=role,
            mfa_serial=self.flag("serial_number"),
            mfa_token=self.flag("mfa_token"),
        )

    @property
    def aws(self) -> Aws:
        if self._aws is None:
            from shepard.aws.flock import Aws

            self._aws = Aws(self.aws_settings())
        return self._aws  # type: ignore[no-any-return]

    def path_flag(self, name: str, doing: str) -> Path:
        return Path(self.settings.require(name, doing)).expanduser()
