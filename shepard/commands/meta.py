"""help and completion, both made from the command declarations of :mod:`shepard.cli`."""

from __future__ import annotations

from shepard.cli import BY_NAME, COMMANDS, command_parser
from shepard.commands import Context
from shepard.errors import BadInput


def help_command(ctx: Context) -> int:
    topic = ctx.flag("topic")
    if topic is None:
        ctx.console.print(ctx.parser.format_help())
        return 0
    command = BY_NAME.get(topic)
    if command is None:
        raise BadInput(
            f"while showing help: there is no command {topic!r}. Commands: "
            f"{', '.join(sorted(BY_NAME))}."
        )
    ctx.console.print(command_parser(command).format_help())
    return 0


def bash_script() -> str:
    cases = "\n".join(
        f'        {command.name}) opts="{" ".join(command.option_strings())}" ;;'
        for command in sorted(COMMANDS, key=lambda c: c.name)
    )
    return f"""# shepard-tf bash completion: eval "$(shepard-tf completion bash)"
_shepard_tf() {{
    local cur cmd opts
    cur="${{COMP_WORDS[COMP_CWORD]}}"
    cmd="${{COMP_WORDS[1]}}"
    if [ "$COMP_CWORD" -eq 1 ]; then
        COMPREPLY=($(compgen -W "{" ".join(sorted(BY_NAME))}" -- "$cur"))
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


def zsh_script() -> str:
    return (
        '# shepard-tf zsh completion: eval "$(shepard-tf completion zsh)"\n'
        "autoload -U +X bashcompinit && bashcompinit\n" + bash_script()
    )


def completion(ctx: Context) -> int:
    script = bash_script() if ctx.flag("shell") == "bash" else zsh_script()
    ctx.console.print(script)
    return 0
