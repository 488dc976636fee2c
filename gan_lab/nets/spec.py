"""Net specs: enough to rebuild a net from a checkpoint without the training stack.

A net that inherits :class:`RecordsInit` remembers the arguments it was constructed with (defaults
applied) as ``init_args``; :func:`net_spec` turns that into plain data,

    {"class_path": "gan_lab.nets.toy.ToyGenerator", "init_args": {"members": 4, "z_dim": 2, ...}}

which :class:`~gan_lab.module.GANModule` stores in its hyper-parameters, so that ``gan-lab sample``
can rebuild G from a checkpoint loaded with ``torch.load(weights_only=True)`` and then load its
weights. :func:`build_net` does the rebuilding, and refuses class paths outside an allow-list
*before* anything is imported or built: importing a module named by a file someone sent you runs
that module's code, and building a class runs its constructor, which is exactly what loading
weights only is meant to avoid. For a checkpoint's generator the allow-list is the lab's generator
classes, :data:`GENERATOR_CLASSES`, matched exactly (``allowed_classes``); otherwise module
prefixes (``gan_lab.`` by default).

>>> from torch import nn
>>> class Tiny(RecordsInit, nn.Module):
...     def __init__(self, width: int = 4, bias: bool = True) -> None:
...         super().__init__()
...         self.fc = nn.Linear(2, width, bias=bias)
>>> Tiny(8).init_args
{'width': 8, 'bias': True}
>>> net_spec(Tiny(8))["init_args"]
{'width': 8, 'bias': True}
>>> net_spec(nn.Linear(2, 2)) is None  # does not record its arguments
True
"""

from __future__ import annotations

import functools
import importlib
import inspect
import warnings
from collections.abc import Collection, Sequence
from typing import Any

from torch import nn

from gan_lab.errors import ConfigError

#: Modules whose classes :func:`build_net` may import and instantiate by default.
DEFAULT_ALLOWED_PREFIXES = ("gan_lab.",)

#: The lab's generators (``module.QualName``, as :func:`net_spec` records them): the only classes a
#: checkpoint's generator spec may name (``gan-lab sample``).
GENERATOR_CLASSES: tuple[str, ...] = (
    "gan_lab.nets.toy.ToyGenerator",
    "gan_lab.nets.dcgan.DCGANGenerator",
    "gan_lab.nets.resnet.SNResNetGenerator",
    "gan_lab.paired.nets.SRResNet",
)

#: Where a generator class of an older checkpoint lives now (its spec names the old path; the
#: class, its arguments and its weights are unchanged).
MOVED_CLASSES: dict[str, str] = {"gan_lab.nets.sr.SRResNet": "gan_lab.paired.nets.SRResNet"}

_DEPTH = "_records_init_depth"  # per-instance nesting depth of recorded __init__ calls
_PLAIN = (type(None), bool, int, float, str)


class RecordsInit:
    """Mixin that stores the bound constructor arguments (defaults applied) as ``self.init_args``.

    Every subclass that defines ``__init__`` gets it wrapped (``__init_subclass__``). When a
    subclass calls ``super().__init__(...)``, the *outermost* call's arguments win: ``init_args``
    is what the user passed to the class they instantiated, i.e. what rebuilds the same net.
    ``**kwargs`` are flattened into ``init_args``; a constructor called with extra positional
    arguments (``*args``) or with positional-only parameters cannot be replayed by keyword, and
    ``init_args`` is then None.

    Put it before ``nn.Module`` in the bases (``class Net(RecordsInit, nn.Module)``); it adds no
    parameters and no state_dict entries.
    """

    init_args: dict[str, Any] | None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is None or getattr(init, "_records_init", False):
            return
        signature = inspect.signature(init)

        @functools.wraps(init)
        def __init__(self, *args: Any, **kw: Any) -> None:
            depth = self.__dict__.get(_DEPTH, 0)
            object.__setattr__(self, _DEPTH, depth + 1)
            try:
                init(self, *args, **kw)
            finally:
                if depth:
                    object.__setattr__(self, _DEPTH, depth)
                else:
                    self.__dict__.pop(_DEPTH, None)
            if depth == 0:  # the outermost constructor: record what the caller passed
                object.__setattr__(self, "init_args", _bind(signature, self, args, kw))

        __init__._records_init = True  # type: ignore[attr-defined]
        cls.__init__ = __init__  # type: ignore[method-assign]


def _bind(signature: inspect.Signature, self: object, args: tuple, kwargs: dict) -> dict[str, Any] | None:
    bound = signature.bind(self, *args, **kwargs)
    bound.apply_defaults()
    out: dict[str, Any] = {}
    for i, (name, value) in enumerate(bound.arguments.items()):
        if i == 0:  # self
            continue
        kind = signature.parameters[name].kind
        if kind is inspect.Parameter.VAR_POSITIONAL:
            if value:
                return None
        elif kind is inspect.Parameter.VAR_KEYWORD:
            out.update(value)
        elif kind is inspect.Parameter.POSITIONAL_ONLY:
            return None
        else:
            out[name] = value
    return out


def class_path(cls: type) -> str:
    """``"module.Qualname"`` of a class, as YAML configs and :func:`build_net` name it."""
    return f"{cls.__module__}.{cls.__qualname__}"


def _as_data(value: Any, where: str) -> Any:
    """``value`` as plain data that ``torch.load(weights_only=True)`` reads back: None, bool, int,
    float, str, lists / tuples / dicts of them, and recording nets as nested specs."""
    if isinstance(value, _PLAIN):
        return value
    if type(value) in (list, tuple):
        return type(value)(_as_data(v, f"{where}[{i}]") for i, v in enumerate(value))
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: _as_data(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, nn.Module):
        spec = net_spec(value)
        if spec is not None:
            return spec
    raise TypeError(f"{where} is a {type(value).__name__}, not plain data")


def net_spec(net: nn.Module) -> dict[str, Any] | None:
    """``{"class_path": ..., "init_args": {...}}`` of a net that records its constructor
    arguments (:class:`RecordsInit`), or None when it does not (a warning then says why, if the
    net records but its arguments are not plain data)."""
    init_args = getattr(net, "init_args", None)
    if not isinstance(net, RecordsInit) or init_args is None:
        return None
    path = class_path(type(net))
    try:
        data = _as_data(dict(init_args), "init_args")
    except TypeError as e:
        warnings.warn(
            f"{path}: no net spec recorded ({e}); it cannot be rebuilt from a checkpoint", stacklevel=2
        )
        return None
    return {"class_path": path, "init_args": data}


def with_seed(net: nn.Module, seed: int) -> nn.Module:
    """``net`` as its class builds it with ``seed``: the same object when it already has that seed,
    or does not take one; a net of the seed ensemble (a ``members`` argument) is left as it is (the
    module reseeds its members, one seed each).

    Image nets (DCGAN, SN-ResNet) draw their initial weights from their own ``seed`` argument; the
    module rebuilds them with its ``seed``, so that ``--model.seed S`` (and a study's seed ``S``) is one
    run from start to end: its weights, data order and noise.

    >>> class Net(RecordsInit, nn.Module):
    ...     def __init__(self, width: int = 2, seed: int = 0) -> None:
    ...         super().__init__()
    ...         self.fc = nn.Linear(width, 1)
    >>> net = Net(3)
    >>> with_seed(net, 0) is net, with_seed(net, 7).init_args
    (True, {'width': 3, 'seed': 7})
    """
    args = getattr(net, "init_args", None)
    if not isinstance(net, RecordsInit) or not isinstance(args, dict) or "members" in args:
        return net
    if "seed" not in args or args["seed"] == seed:
        return net
    return type(net)(**{**args, "seed": int(seed)})


def _is_spec(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"class_path", "init_args"}


def _allowed(path: str, prefixes: Sequence[str]) -> bool:
    return any(path.startswith(p) or path == p.rstrip(".") for p in prefixes)


def import_module_class(path: str, what: str = "net class") -> type:
    """The ``nn.Module`` subclass ``"pkg.mod.Class"`` names: the longest importable module prefix of
    ``path``, the rest walked as attributes. Used for nets (with an allow-list, :func:`build_net`) and
    for user feature nets (:func:`gan_lab.metrics.features.load_feature_net`).

    Raises:
        ConfigError: (one line, ``what`` named) not a dotted name, nothing importable, a missing
            attribute, or not an ``nn.Module`` subclass.
    """
    if not all(p.isidentifier() for p in path.split(".")):
        raise ConfigError(f"{what} path {path!r} is not a dotted Python name")
    parts = path.split(".")
    for i in range(len(parts) - 1, 0, -1):
        module_name = ".".join(parts[:i])
        try:
            obj: Any = importlib.import_module(module_name)
        except ImportError:
            continue
        for attr in parts[i:]:
            if not hasattr(obj, attr):
                raise ConfigError(f"{what} {path!r} not found: {module_name!r} has no {attr!r}")
            obj = getattr(obj, attr)
        break
    else:
        raise ConfigError(f"{what} {path!r} not found: no module of that name can be imported")
    if not (isinstance(obj, type) and issubclass(obj, nn.Module)):
        raise ConfigError(f"{what} {path!r} is not an nn.Module subclass; refusing to call it")
    return obj


def _resolve(path: str, prefixes: Sequence[str]) -> type:
    """The class ``path`` names (:func:`import_module_class`), refused outside ``prefixes``."""
    obj = import_module_class(path, "net class_path")
    if not _allowed(class_path(obj), prefixes):  # e.g. gan_lab.nets.toy.torch.nn.Transformer
        raise ConfigError(
            f"net class_path {path!r} resolves to {class_path(obj)!r}, outside the allowed modules "
            f"({', '.join(prefixes)}); refusing to build it"
        )
    return obj


def build_net(
    spec: dict[str, Any],
    allowed_prefixes: Sequence[str] = DEFAULT_ALLOWED_PREFIXES,
    allowed_classes: Collection[str] | None = None,
    what: str = "net",
) -> nn.Module:
    """Instantiate ``spec["class_path"](**spec["init_args"])`` (nested specs in ``init_args`` are
    built too), with its freshly initialised weights: load a state_dict into it afterwards.

    ``allowed_classes``: the exact class paths that may be built (:data:`GENERATOR_CLASSES` for a
    checkpoint's generator), instead of ``allowed_prefixes``; ``what``: the role, as messages name it.

    Raises:
        ConfigError: (one line) for a malformed spec, a class path outside ``allowed_classes`` /
            ``allowed_prefixes`` (checked *before* anything is imported), a class that is not an
            ``nn.Module`` subclass, or arguments the class rejects.

    >>> build_net({"class_path": "gan_lab.nets.toy.ToyGenerator", "init_args": {"hidden": 8}}).z_dim
    2
    >>> build_net({"class_path": "os.system", "init_args": {}})
    Traceback (most recent call last):
    ...
    gan_lab.errors.ConfigError: net class_path 'os.system' is outside the allowed modules (gan_lab.); refusing to import it
    >>> spec = {"class_path": "gan_lab.metrics.features.DigitClassifierFeatures", "init_args": {}}
    >>> build_net(spec, allowed_classes=GENERATOR_CLASSES, what="generator")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    gan_lab.errors.ConfigError: generator class_path 'gan_lab.metrics.features.DigitClassifierFeatures' is not one of the lab's generator classes (gan_lab.nets.toy.ToyGenerator, ...); refusing to import or build it

    >>> old = {"class_path": "gan_lab.nets.sr.SRResNet", "init_args": {}}  # an older checkpoint's spec
    >>> type(build_net(old, allowed_classes=GENERATOR_CLASSES, what="generator")).__module__
    'gan_lab.paired.nets'
    """
    if (
        not _is_spec(spec)
        or not isinstance(spec["class_path"], str)
        or not isinstance(spec["init_args"], dict)
    ):
        raise ConfigError(
            "a net spec must be {'class_path': 'module.Class', 'init_args': {...}}, got "
            f"{type(spec).__name__} {sorted(spec) if isinstance(spec, dict) else ''}".rstrip()
        )
    path = MOVED_CLASSES.get(spec["class_path"], spec["class_path"])
    if allowed_classes is not None:
        if path not in allowed_classes:
            shown = path if len(path) <= 100 else path[:97] + "..."
            kinds = "the lab's generator classes" if what == "generator" else f"the allowed {what} classes"
            raise ConfigError(
                f"{what} class_path {shown!r} is not one of {kinds} ({', '.join(allowed_classes)}); "
                "refusing to import or build it"
            )
        cls = import_module_class(path, f"{what} class_path")
        if class_path(cls) != path:  # an allowed name that is an alias of another class
            raise ConfigError(
                f"{what} class_path {path!r} resolves to {class_path(cls)!r}; refusing to build it"
            )
    elif not _allowed(path, allowed_prefixes) or any(not p.isidentifier() for p in path.split(".")):
        raise ConfigError(
            f"{what} class_path {path!r} is outside the allowed modules ({', '.join(allowed_prefixes)}); "
            "refusing to import it"
        )
    else:
        cls = _resolve(path, allowed_prefixes)
    init_args = {
        k: build_net(v, allowed_prefixes, allowed_classes, what) if _is_spec(v) else v
        for k, v in spec["init_args"].items()
    }
    try:
        return cls(**init_args)
    except ConfigError:
        raise
    except (TypeError, ValueError) as e:
        raise ConfigError(f"cannot build {path} from its spec: {e}") from e
