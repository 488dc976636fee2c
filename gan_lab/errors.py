"""Errors that the command line turns into one line on stderr and exit code 2.

A :class:`ConfigError` is raised for input that cannot work (an unknown name, an impossible
combination, a negative weight) *before* any training starts; its message is one line that says
what is wrong and what to do.
"""


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
