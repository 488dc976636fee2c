"""One registry by name for everything a config names: objectives, regularizers, datasets.

A :class:`Registry` maps a short name (``"hinge"``) to a class or a zero-argument factory. It reads
as a mapping (``OBJECTIVES["hinge"]``, ``sorted(OBJECTIVES)``, ``"r1" in REGULARIZERS``) and grows
only through :meth:`Registry.register`, which refuses a name that is taken. :meth:`Registry.get`
builds an entry from its name with its defaults and passes an instance of the registry's base type
through unchanged, so that a config value may be either; an unknown name is one
:class:`~gan_lab.errors.ConfigError` line listing the valid names (:func:`~gan_lab.errors.check_choice`).

Names only: a ``class_path`` (``gan_lab.losses.Hinge``, or the short ``Hinge``) is resolved by
LightningCLI / jsonargparse before a value reaches a registry, and a registry imports nothing.

The registries (seven):

- ``gan_lab.losses.OBJECTIVES``: the adversarial objectives;
- ``gan_lab.regularizers.REGULARIZERS``: penalties, constraints and the image terms;
- ``gan_lab.data.toy.MIXTURES``: the 2-D Gaussian mixtures;
- ``gan_lab.data.images.IMAGE_DATASETS``: the image data sets (stacked digits too);
- ``gan_lab.metrics.METRICS``: the metrics an evaluator computes;
- ``gan_lab.metrics.features.FEATURE_NETS``: the image metrics' feature networks;
- ``gan_lab.study.EVALUATORS``: the evaluators a study runs (keyed by their ``NAME``).

A new kind is one line:

>>> class Metric: ...
>>> METRICS = Registry("metric", base=Metric)
>>> @METRICS.register(name="count")
... class Count(Metric): ...
>>> METRICS.get("count")  # doctest: +ELLIPSIS
<...Count object at ...>
>>> METRICS.get("fid")
Traceback (most recent call last):
...
gan_lab.errors.ConfigError: unknown metric 'fid'; valid metrics: count
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Generic, TypeVar

from gan_lab.errors import ConfigError, check_choice

T = TypeVar("T")


class Registry(Mapping[str, Callable[[], T]], Generic[T]):
    """Names -> classes or zero-argument factories of one kind of component.

    Args:
        kind: what an entry is, singular, as the messages name it (``"objective"``).
        base: the class (or tuple of classes) of built entries: :meth:`get` returns an instance of
            it unchanged. ``()`` passes nothing through.
        entries: registered at once, each under its ``name`` attribute (see :meth:`register`).
        plural: the messages' plural when it is not ``kind + "s"``.
        key: the attribute an entry's name is read from when :meth:`register` is given none
            (``"name"``; the evaluators' is ``"NAME"``).

    >>> from gan_lab.losses import OBJECTIVES, Hinge
    >>> OBJECTIVES
    Registry('objective', ['minimax', 'non_saturating', 'wasserstein', 'hinge', 'least_squares', 'relativistic'])
    >>> OBJECTIVES["hinge"] is Hinge, "hinge" in OBJECTIVES
    (True, True)
    """

    def __init__(
        self,
        kind: str,
        base: type | tuple[type, ...] = (),
        entries: Iterable[Callable[[], T]] = (),
        plural: str | None = None,
        key: str = "name",
    ) -> None:
        self.kind, self.base, self.key = kind, base, key
        self.plural = plural or f"{kind}s"
        self._entries: dict[str, Callable[[], T]] = {}
        for entry in entries:
            self.register(entry)

    def register(
        self, entry: Callable[[], T] | None = None, *, name: str | None = None, replace: bool = False
    ) -> Any:
        """Add ``entry`` under ``name`` (default: its :attr:`key` attribute, ``entry.name``) and
        return it unchanged.

        Works as ``register(cls)``, as a decorator ``@register`` and as ``@register(name="x")``.
        ``replace``: take the name over from the entry that holds it (a class defined again).

        Raises:
            ConfigError: the name is empty or missing, or already registered (one line naming the
                entry that holds it).

        >>> reg = Registry("widget")
        >>> reg.register(dict, name="plain") is dict
        True
        >>> reg.register(list, name="plain")
        Traceback (most recent call last):
        ...
        gan_lab.errors.ConfigError: widget 'plain' is already registered (builtins.dict); pick another name
        """

        def add(entry: Callable[[], T]) -> Callable[[], T]:
            key = getattr(entry, self.key, None) if name is None else name
            if not isinstance(key, str) or not key:
                raise ConfigError(
                    f"cannot register {_qualname(entry)} as a {self.kind}: it has no name "
                    f"(set its `{self.key}` attribute or pass register(..., name=...))"
                )
            if key in self._entries and not replace:
                raise ConfigError(
                    f"{self.kind} {key!r} is already registered ({_qualname(self._entries[key])}); "
                    "pick another name"
                )
            self._entries[key] = entry
            return entry

        return add if entry is None else add(entry)

    @contextmanager
    def temporarily(self, entry: Callable[[], T], *, name: str | None = None) -> Iterator[Callable[[], T]]:
        """Register ``entry`` for the length of a ``with`` block only (a test's own dataset, a
        one-off study in a notebook); the name is free again afterwards.

        >>> reg = Registry("widget")
        >>> with reg.temporarily(dict, name="plain"):
        ...     "plain" in reg
        True
        >>> "plain" in reg
        False
        """
        self.register(entry, name=name)
        key = getattr(entry, self.key, None) if name is None else name
        try:
            yield entry
        finally:
            self._entries.pop(key, None)

    def get(self, name_or_instance: str | T) -> T:
        """An instance of the entry ``name_or_instance`` names, built with no arguments; an
        instance of ``base`` is returned as it is.

        Raises:
            ConfigError: an unknown name, ``unknown <kind> '<name>'; valid <plural>: <sorted names>``.

        >>> from gan_lab.losses import OBJECTIVES, Hinge
        >>> OBJECTIVES.get("hinge")
        Hinge()
        >>> h = Hinge()
        >>> OBJECTIVES.get(h) is h
        True
        """
        if self.base and isinstance(name_or_instance, self.base):
            return name_or_instance
        check_choice(self.kind, name_or_instance, self, self.plural)
        return self._entries[name_or_instance]()

    def lookup(self, key: object, old_paths: bool = False) -> Callable[[], T]:
        """The entry registered as ``key``, not built; for what a file names (study.json's
        evaluators). Nothing is imported: ``key`` is looked up, never resolved as a module path.

        ``old_paths``: also accept the exact ``module.QualName`` of a registered entry (how files
        written before the registry named it), matched as a string against the entries' own.

        Raises:
            ConfigError: ``key`` is no registered name (nor, with ``old_paths``, the class path of a
                registered entry), one line naming the valid names.

        >>> from gan_lab.losses import OBJECTIVES, Hinge
        >>> OBJECTIVES.lookup("hinge") is Hinge, OBJECTIVES.lookup("gan_lab.losses.objectives.Hinge", old_paths=True) is Hinge
        (True, True)
        >>> OBJECTIVES.lookup("os.system", old_paths=True)
        Traceback (most recent call last):
        ...
        gan_lab.errors.ConfigError: unknown objective 'os.system'; valid objectives: hinge, least_squares, minimax, non_saturating, relativistic, wasserstein
        """
        if key in self:
            return self._entries[key]  # type: ignore[index]
        if old_paths and isinstance(key, str):
            for entry in self._entries.values():
                if _qualname(entry) == key:
                    return entry
        check_choice(self.kind, key if isinstance(key, str) else repr(key), self, self.plural)
        raise AssertionError  # pragma: no cover  (check_choice raised)

    def __getitem__(self, name: str) -> Callable[[], T]:
        return self._entries[name]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {list(self._entries)})"


def _qualname(entry: object) -> str:
    """``module.QualName`` of a class or function, else its repr."""
    qualname = getattr(entry, "__qualname__", None)
    return f"{entry.__module__}.{qualname}" if qualname else repr(entry)
