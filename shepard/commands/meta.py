"""help and completion."""

from __future__ import annotations

import argparse

from shepard.commands import Context
from shepard.errors import BadInput


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def help_command(ctx: Context) -> int:
    topic = ctx.flag("topic")
    commands = _subparsers(ctx.parser)
    if topic is None:
        ctx.console.print(ctx.parser.format_help())
        return 0
    if topic not in commands:
        raise BadInput(
            f"while showing help: there is no command {topic!r}. Commands: "
            f"{', '.join(sorted(commands))}."
        )
    ctx.console.print(commands[topic].format_help())
    return 0


def _options(parser: argparse.ArgumentParser) -> list[str]:
    return sorted(o for a in parser._actions for o in a.option_strings if o.startswith("--"))


def bash_script(parser: argparse.ArgumentParser) -> str:
    commands = _subparsers(parser)
    cases = "\n".join(
        f'        {name}) opts="{" ".join(_options(sub))}" ;;'
        for name, sub in sorted(commands.items())
    )
    return f"""# shepard-tf bash completion: eval "$(shepard-tf completion bash)"
_shepard_tf() {{
    local cur cmd opts
    cur="${{COMP_WORDS[COMP_CWORD]}}"
    cmd="${{COMP_WORDS[1]}}"
    if [ "$COMP_CWORD" -eq 1 ]; then
        COMPREPLY=($(compgen -W "{" ".join(sorted(commands))}" -- "$cur"))
        return
    fi
    case "$cmd" in
{cases}
        *) opts="" ;;
    esac
    if [[ "$cur" == -* ]]; then
        COMPREPLY=($(compgen -W "$opts" -- "$cur"))
    else
        COMPREPLY=($(compgen -f -- "$cur"))
    fi
}}
complete -o filenames -F _shepard_tf shepard-tf
"""


def zsh_script(parser: argparse.ArgumentParser) -> str:
    return (
        '# shepard-tf zsh completion: eval "$(shepard-tf completion zsh)"\n'
        "autoload -U +X bashcompinit && bashcompinit\n" + bash_script(parser)
    )


def completion(ctx: Context) -> int:
    shell = ctx.flag("shell")
    script = bash_script(ctx.parser) if shell == "bash" else zsh_script(ctx.parser)
    ctx.console.print(script)
    return 0
