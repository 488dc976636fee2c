"""Errors that the command line turns into one line on stderr and exit code 2.

A :class:`ConfigError` is raised for input that cannot work (an unknown name, an impossible
combination, a negative weight) *before* any training starts; its message is one line that says
what is wrong and what to do.
"""

import os
import sys


class ConfigError(ValueError):
    """A configuration that cannot work. The message is one line: what is wrong, what to do."""


def check_choice(kind: str, name: str, valid, plural: str | None = None) -> None:
    """Raise :class:`ConfigError` listing ``valid`` (sorted) when ``name`` is not one of them;
    ``plural`` names them when ``kind + "s"`` does not (``"policies"``).

    >>> check_choice("objective", "hinge", ["hinge", "wasserstein"])
    >>> check_choice("objective", "hing", ["hinge", "wasserstein"])
    Traceback (most recent call last):
    ...
    gan_lab.errors.ConfigError: unknown objective 'hing'; valid objectives: hinge, wasserstein
    """
    if name not in valid:
        raise ConfigError(
            f"unknown {kind} {name!r}; valid {plural or kind + 's'}: {', '.join(sorted(valid))}"
        )


def check_int(label: str, value, minimum: int = 1, hint: str = "") -> int:
    """Return ``value`` if it is an integer >= ``minimum`` (not a bool), else raise one line.

    >>> check_int("n_critic", 5)
    5
    >>> check_int("n_critic", 0, hint=" (D steps per G step)")
    Traceback (most recent call last):
    ...
    gan_lab.errors.ConfigError: n_critic must be an integer >= 1 (D steps per G step), got 0
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{label} must be an integer >= {minimum}{hint}, got {value!r}")
    return value


def check_weight(name: str, value) -> float:
    """Return ``value`` as a float, refusing non-numbers, NaN and negative values.

    >>> check_weight("r1 gamma", 10)
    10.0
    >>> check_weight("r1 gamma", -1)
    Traceback (most recent call last):
    ...
    gan_lab.errors.ConfigError: r1 gamma must be a number >= 0, got -1
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ConfigError(f"{name} must be a number >= 0, got {value!r}")
    return float(value)


EXIT_BAD_INPUT = 2


def fail(message: str) -> int:
    """Print ``gan-lab: error: <message>`` (one line) to stderr and return exit code 2."""
    print(f"gan-lab: error: {' '.join(str(message).split())}", file=sys.stderr)
    return EXIT_BAD_INPUT


def config_error_in(exc: BaseException):
    """The :class:`ConfigError` that caused ``exc`` (jsonargparse wraps errors raised while it
    instantiates classes), or None."""

    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, ConfigError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def bad_input_in(exc: BaseException) -> str | None:
    """The one line a configuration or argument error means for the user (a :class:`ConfigError`
    raised while instantiating, Lightning's refusal of an accelerator, or jsonargparse's own
    complaint), or None for any other error."""
    from jsonargparse import ArgumentError
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    cause = config_error_in(exc)
    if cause is not None:
        return str(cause)
    if isinstance(exc, MisconfigurationException):
        return describe_misconfiguration(str(exc))
    return describe_argument_error(str(exc)) if isinstance(exc, ArgumentError) else None


def describe_argument_error(text: str) -> str:
    r"""One line from a (nested, multi-line) jsonargparse error: the full key and what was wrong.

    >>> describe_argument_error('Parser key "model.n_critic":\n  Expected a <class \'int\'>. Got value: abc')
    "bad value for model.n_critic: expected an int, got 'abc'"
    >>> describe_argument_error(
    ...     'Parser key "model.max_g_steps":\n  Does not validate against any of the Union subtypes\n'
    ...     "  Subtypes: [<class 'int'>, <class 'NoneType'>]\n  Errors:\n    - Expected a <class 'int'>\n"
    ...     "    - Expected a <class 'NoneType'>\n  Given value type: <class 'str'>\n  Given value: abc"
    ... )
    "bad value for model.max_g_steps: expected an int or null, got 'abc'"
    >>> describe_argument_error('Parser key "model.n_critic":\n  Expected a <class \'int\'>. Got value: ' + "x" * 500)[-20:]
    "xxxxxxxxxxxxxxx...'"
    """
    import re

    lines = [line.strip() for line in text.splitlines() if line.strip()]
    keys = [m.group(1) for line in lines if (m := re.match(r'Parser key "([^"]+)"', line))]
    # The innermost "Expected a <class T>. Got value: V" names the exact problem; a union of plain
    # types lists one "- Expected a <class T>" per type, then "Given value: V".
    exact = re.compile(r"Expected a <class '([\w.]+)'>\. Got value: (.*)$")
    inner = next((m for line in lines if (m := exact.search(line))), None)
    if inner is not None:
        expected, value = [_type_name(inner.group(1))], inner.group(2)
    else:
        value = next((m.group(1) for line in lines if (m := re.match(r"Given value: (.*)$", line))), None)
        union = re.compile(r"- Expected a <class '([\w.]+)'>")
        expected = [_type_name(m.group(1)) for line in lines if (m := union.fullmatch(line))]
    if not keys or value is None or not expected:
        return " ".join(lines[:3])[:300] if lines else "bad arguments; see gan-lab fit --help"
    shown = value if len(value) <= 60 else value[:57] + "..."  # never a whole file a value named
    return f"bad value for {'.'.join(keys)}: expected {' or '.join(dict.fromkeys(expected))}, got {shown!r}"


def _type_name(name: str) -> str:
    """``int`` -> ``an int``, ``NoneType`` -> ``null`` (as YAML writes it)."""
    words = {
        "NoneType": "null",
        "int": "an int",
        "float": "a number",
        "bool": "true or false",
        "str": "a string",
    }
    return words.get(name, f"a {name}")


def describe_misconfiguration(text: str) -> str:
    """One line for Lightning's refusal of a Trainer setting (an accelerator this machine lacks).

    >>> describe_misconfiguration("No supported gpu backend found!")
    'trainer.accelerator: the device asked for is not on this machine (No supported gpu backend found!); use --trainer.accelerator cpu or auto'
    """
    import re

    one_line = " ".join(text.split())
    if re.search(r"can not run on your system|No supported .* backend found|not available", one_line):
        return (
            f"trainer.accelerator: the device asked for is not on this machine ({one_line[:160]}); use "
            "--trainer.accelerator cpu or auto"
        )
    return one_line[:300]


def writable_folder(path: str) -> bool:
    """Whether ``path`` (or the nearest existing folder above it) takes a new entry. Tried for real
    (a temporary folder, removed at once): ``os.access`` says yes to root everywhere."""
    import tempfile

    probe = os.path.abspath(path)
    while not os.path.exists(probe):
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe):
        return False
    try:
        os.rmdir(tempfile.mkdtemp(dir=probe, prefix=".gan-lab-probe-"))
    except OSError:
        return False
    return True
