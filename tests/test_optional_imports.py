"""An optional package that cannot be imported is explained, with its fix.

torchvision is compiled against one torch release and one kind of build (CPU
or CUDA). pip happily installs a torchvision that does not fit the torch at
hand, and the import then fails deep inside torchvision ("operator
torchvision::nms does not exist"). The error sktransfer raises names both
builds and how to install a matching pair.

The packages here are fakes written to ``tmp_path``, with the metadata pip
would leave (``*.dist-info``): nothing is installed.
"""

import sys

import pytest
import torch

from sktransfer.sources._spec import import_optional
from sktransfer.sources._torch_build import describe_mismatch


def _install_fake(site, name, version, init_source, requires=(), version_py=None):
    """A package ``name`` in ``site``, with the dist-info pip would write."""
    package = site / name
    package.mkdir()
    (package / "__init__.py").write_text(init_source)
    files = [f"{name}/__init__.py"]
    if version_py is not None:
        (package / "version.py").write_text(f"__version__ = {version_py!r}\n")
        files.append(f"{name}/version.py")
    dist_info = site / f"{name}-{version}.dist-info"
    dist_info.mkdir()
    metadata = [
        "Metadata-Version: 2.1",
        f"Name: {name}",
        f"Version: {version}",
        *(f"Requires-Dist: {requirement}" for requirement in requires),
    ]
    (dist_info / "METADATA").write_text("\n".join(metadata) + "\n")
    files += [f"{dist_info.name}/METADATA", f"{dist_info.name}/RECORD"]
    (dist_info / "RECORD").write_text("".join(f"{path},,\n" for path in files))


@pytest.fixture
def site(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in [name for name in sys.modules if name.startswith("fake")]:
        del sys.modules[name]


def test_a_cuda_torchvision_next_to_a_cpu_torch_is_named_as_the_cause():
    reason = describe_mismatch(
        "torchvision", "0.28.0+cu130", "2.13.0", "2.13.0+cpu", "cpu"
    )

    assert "torchvision 0.28.0+cu130 is a CUDA 13.0 build" in reason
    assert "torch 2.13.0+cpu is a CPU-only build" in reason
    assert "pip install torch torchvision" in reason


def test_a_torchvision_made_for_another_torch_release_is_named_as_the_cause():
    reason = describe_mismatch(
        "torchvision", "0.29.1+cu130", "2.14.1", "2.13.0+cpu", "cpu"
    )

    assert "was built for torch 2.14.1, but torch 2.13.0+cpu is installed" in reason


@pytest.mark.parametrize(
    ("version", "required", "torch_version", "torch_build"),
    [
        ("0.29.1+cu130", "2.14.1", "2.14.1+cu130", "CUDA 13.0"),
        ("0.28.0+cpu", "2.13.0", "2.13.0+cpu", "cpu"),
        ("0.29.1", "2.14.1", "2.14.1", "CUDA 12.8"),
        ("0.29.1+rocm6.4", None, "2.14.1+rocm6.4", "ROCm 6.4"),
    ],
)
def test_a_matching_pair_is_not_called_a_mismatch(
    version, required, torch_version, torch_build
):
    assert (
        describe_mismatch("torchvision", version, required, torch_version, torch_build)
        is None
    )


def test_import_error_reads_the_build_from_version_py_and_the_pinned_torch(site):
    # PyPI's wheels carry no build label in their metadata ("0.28.0"); only
    # version.py says "+cu130".
    _install_fake(
        site,
        "fakevision",
        "0.1.0",
        "raise RuntimeError('operator fakevision::nms does not exist')\n",
        requires=["torch (==1.0.0)", "numpy"],
        version_py="0.1.0+cu130",
    )

    with pytest.raises(ImportError) as error:
        import_optional("fakevision.models", "torchvision")

    message = str(error.value)
    assert "'fakevision' is installed but cannot be imported" in message
    assert "operator fakevision::nms does not exist" in message
    assert (
        f"fakevision 0.1.0+cu130 was built for torch 1.0.0, but torch "
        f"{torch.__version__} is installed" in message
    )
    assert "in one pip command from one index" in message


def test_a_missing_dependency_of_an_installed_package_is_not_called_missing(site):
    _install_fake(site, "fakeimm", "1.0.0", "import fake_missing_dependency\n")

    with pytest.raises(ImportError, match="'fakeimm' is installed but cannot be"):
        import_optional("fakeimm", "timm")


def test_a_missing_torchvision_says_to_install_it_with_a_matching_torch(
    monkeypatch,
):
    # Both: an earlier test may have imported torchvision.models, and
    # import_module would return it from sys.modules.
    monkeypatch.setitem(sys.modules, "torchvision", None)
    monkeypatch.setitem(sys.modules, "torchvision.models", None)

    with pytest.raises(ImportError) as error:
        import_optional("torchvision.models", "torchvision")

    message = str(error.value)
    assert 'pip install "sktransfer[torchvision]"' in message
    assert "with torch and torchvision from one index" in message
