"""What every named source has in common: a small, lazy, cloneable description."""

import copy
import importlib
import socket
import urllib.parse
import urllib.request

from ._torch_build import torch_build_mismatch

__all__ = ["SourceSpec", "import_optional", "reachable"]


def reachable(url, timeout=3.0):
    """False when no connection to ``url``'s host can be opened (offline).

    One TCP connection, refused or timed out within ``timeout`` seconds:
    downloaders retry for up to a minute before giving up, so asking once
    first lets an offline machine fail at once. Behind a proxy a direct
    connection proves nothing: True is returned and the download decides.
    """
    if urllib.request.getproxies():
        return True
    parts = urllib.parse.urlsplit(url)
    if parts.hostname is None:
        return True
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


# torchvision is compiled against one torch release and build; timm needs it.
_NEEDS_MATCHING_TORCHVISION = frozenset({"torchvision", "timm"})


def import_optional(module_name, extra):
    """Import ``module_name``, or say why it cannot be imported and what fixes it.

    Parameters
    ----------
    module_name : str
        The module to import, e.g. ``"torchvision.models"``.
    extra : str
        The sktransfer extra that installs it, e.g. ``"torchvision"``.

    Returns
    -------
    module : module

    Raises
    ------
    ImportError
        When the package is not installed (naming the extra), or is installed
        but fails to import; then, when the cause is a build of torchvision
        (or another compiled torch extension) made for another torch release
        or another kind of build (CUDA next to a CPU-only torch), the message
        names both builds and how to install a matching pair.
    """
    package = module_name.partition(".")[0]
    install = f'pip install "sktransfer[{extra}]"'
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.partition(".")[0] != package:
            raise _cannot_import(package, exc) from exc
        message = (
            f"This source needs the optional package {package!r}, which is not "
            f"installed: {install}"
        )
        if extra in _NEEDS_MATCHING_TORCHVISION:
            message += (
                ", with torch and torchvision from one index, in one pip command "
                "('Installing the extras' in sktransfer's documentation: a "
                "torchvision made for another torch, or a CUDA one next to a "
                "CPU-only torch, fails to import)."
            )
        raise ImportError(message) from exc
    except Exception as exc:
        # A compiled extension built for another torch fails on import with
        # RuntimeError (torchvision: "operator torchvision::nms does not
        # exist"), OSError or ImportError (undefined symbol).
        raise _cannot_import(package, exc) from exc


def _cannot_import(package, exc):
    cause = f"{type(exc).__name__}: {exc}"
    mismatch = torch_build_mismatch([package, "torchvision"])
    if mismatch is None:
        import torch

        return ImportError(
            f"The optional package {package!r} is installed but cannot be "
            f"imported ({cause}). If it is compiled against torch, it must be "
            f"the build made for this torch ({torch.__version__}): install "
            "torch and it together, in one pip command from one index (see "
            "'Installing the extras' in sktransfer's documentation)."
        )
    return ImportError(
        f"The optional package {package!r} is installed but cannot be imported "
        f"({cause}), because {mismatch}"
    )


class SourceSpec:
    """Base class of the named sources: a description resolved in ``fit``.

    A spec holds a few plain parameters (a model name, a weights name, keyword
    arguments) and loads nothing until :meth:`load` is called. Estimators
    store it verbatim as ``source_module``; ``clone`` and ``GridSearchCV`` copy
    the description, not a network, and its parameters can be searched over
    as ``source_module__<name>``.

    Subclasses list their constructor parameters in ``_param_names`` (the
    first one is positional), give the public factory's name in
    ``_factory_name``, and implement :meth:`load`.
    """

    _param_names = ()
    _factory_name = None

    def load(self):
        """Build the network; called once per ``fit``.

        Returns
        -------
        module : torch.nn.Module
            A new network, owned by the caller.
        """
        raise NotImplementedError

    def get_params(self, deep=True):
        """Parameters of the description, as in scikit-learn.

        Parameters
        ----------
        deep : bool, default=True
            Ignored: a spec holds no estimators.

        Returns
        -------
        params : dict
        """
        return {name: getattr(self, name) for name in self._param_names}

    def set_params(self, **params):
        """Set parameters of the description, as in scikit-learn.

        Parameters
        ----------
        **params : dict
            Parameter names and values.

        Returns
        -------
        self : object
        """
        for name, value in params.items():
            if name not in self._param_names:
                raise ValueError(
                    f"Invalid parameter {name!r} for {self!r}. Valid "
                    f"parameters are: {sorted(self._param_names)!r}."
                )
            setattr(self, name, value)
        return self

    def __sklearn_clone__(self):
        return type(self)(**copy.deepcopy(self.get_params()))

    def __eq__(self, other):
        return type(other) is type(self) and other.get_params() == self.get_params()

    # Mutable (set_params), so not hashable, like a list.
    __hash__ = None

    def __repr__(self):
        first, *others = self._param_names
        defaults = type(self)._defaults()
        shown = [repr(getattr(self, first))]
        shown.extend(
            f"{name}={getattr(self, name)!r}"
            for name in others
            if getattr(self, name) != defaults.get(name)
        )
        return f"{self._factory_name}({', '.join(shown)})"

    @classmethod
    def _defaults(cls):
        import inspect

        signature = inspect.signature(cls.__init__)
        return {
            name: parameter.default
            for name, parameter in signature.parameters.items()
            if parameter.default is not inspect.Parameter.empty
        }
