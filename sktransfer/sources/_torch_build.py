"""Does an installed compiled torch extension (torchvision) fit the torch at hand?

A torchvision wheel is compiled for one torch release and one build of it (CPU,
a CUDA version, ROCm). pip checks only the release, so a CUDA torchvision can
sit next to a CPU-only torch, and then fails on import deep inside its own
code. These functions read what was installed from the package metadata and
``version.py`` (the import itself is what fails) and say what does not match.
"""

import importlib.metadata
import re

__all__ = ["describe_mismatch", "torch_build_mismatch"]


def torch_build_mismatch(import_names):
    """Why an installed compiled torch extension cannot load, or None.

    Looks at the installed distributions that provide ``import_names`` (their
    metadata and ``version.py``, without importing them) and at the torch
    that is imported.
    """
    import torch

    torch_build = _build_of_torch(torch.version)
    distributions = importlib.metadata.packages_distributions()
    for name in dict.fromkeys(
        dist
        for import_name in import_names
        for dist in distributions.get(import_name, ())
    ):
        distribution = importlib.metadata.distribution(name)
        reason = describe_mismatch(
            name,
            _full_version(distribution),
            _required_torch(distribution),
            torch.__version__,
            torch_build,
        )
        if reason is not None:
            return reason
    return None


def describe_mismatch(name, version, required_torch, torch_version, torch_build):
    """Say why extension ``name`` does not match torch, or None when it does.

    Parameters
    ----------
    name : str
        The extension's distribution, e.g. ``"torchvision"``.
    version : str
        Its full version, with the build label: ``"0.28.0+cu130"``.
    required_torch : str or None
        The torch release it pins (``Requires-Dist: torch==2.13.0``), if any.
    torch_version : str
        ``torch.__version__``.
    torch_build : str
        ``"cpu"``, ``"CUDA 12.8"`` or ``"ROCm 6.2"``: what torch was built for.

    Returns
    -------
    reason : str or None
        A sentence naming both builds and the fix.
    """
    torch_release = torch_version.partition("+")[0]
    extension_build = _build_of_label(version.partition("+")[2])
    if required_torch is not None and required_torch != torch_release:
        problem = (
            f"{name} {version} was built for torch {required_torch}, but torch "
            f"{torch_version} is installed."
        )
    elif extension_build is not None and (extension_build == "cpu") != (
        torch_build == "cpu"
    ):
        problem = (
            f"{name} {version} is a {_describe(extension_build)} build, but torch "
            f"{torch_version} is a {_describe(torch_build)} build: their compiled "
            "operators do not fit together."
        )
    else:
        return None
    return (
        f"{problem} Install torch and {name} as a matching pair, in one pip "
        "command from one index: in a fresh virtual environment, "
        f"`pip install torch {name}` (PyPI's CUDA builds, which also run on a "
        "CPU), or both from PyTorch's CPU index (`pip install torch "
        f"{name} --index-url https://download.pytorch.org/whl/cpu`). "
        "'Installing the extras' in sktransfer's documentation has a tested "
        "recipe."
    )


def _describe(build):
    return "CPU-only" if build == "cpu" else build


def _build_of_torch(version_module):
    if getattr(version_module, "cuda", None):
        return f"CUDA {version_module.cuda}"
    if getattr(version_module, "hip", None):
        return f"ROCm {version_module.hip}"
    return "cpu"


def _build_of_label(label):
    """``"cu130"`` → ``"CUDA 13.0"``, ``"rocm6.2"`` → ``"ROCm 6.2"``, ``"cpu"``."""
    if label == "cpu":
        return "cpu"
    match = re.fullmatch(r"cu(\d+)(\d)", label)
    if match:
        return f"CUDA {match[1]}.{match[2]}"
    if label.startswith("rocm"):
        return f"ROCm {label[4:]}"
    return None


def _full_version(distribution):
    # PyPI forbids local labels, so torchvision's wheels there are "0.28.0"
    # in their metadata but "0.28.0+cu130" in their version.py.
    if "+" in distribution.version:
        return distribution.version
    for file in distribution.files or ():
        if file.name == "version.py" and len(file.parts) == 2:
            match = re.search(
                r"""^__version__\s*=\s*['"]([^'"]+)['"]""",
                file.read_text() or "",
                re.MULTILINE,
            )
            if match and match[1].startswith(distribution.version):
                return match[1]
    return distribution.version


def _required_torch(distribution):
    for requirement in distribution.requires or ():
        match = re.fullmatch(r"torch\s*\(?\s*==\s*([\w.]+)\s*\)?", requirement.strip())
        if match:
            return match[1]
    return None
