"""The package's lazy __init__: importing it runs nothing, and every public name resolves."""

import importlib
import subprocess
import sys

import pytest

import aliyun_sms_connector


def run(code: str) -> str:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout.strip()


class TestLazy:
    def test_import_loads_none_of_the_package(self):
        """import aliyun_sms_connector loads no submodule and no dependency."""
        out = run(
            "import sys; before = set(sys.modules); import aliyun_sms_connector; "
            "print(sorted(set(sys.modules) - before - {'aliyun_sms_connector'}))"
        )
        assert out == "[]"

    def test_a_name_loads_only_what_it_needs(self):
        """Asking for ConfigError loads _errors, not pydantic or the SDK."""
        out = run(
            "import sys; from aliyun_sms_connector import ConfigError; "
            "print('pydantic' in sys.modules, 'aliyun_sms_connector._errors' in sys.modules)"
        )
        assert out == "False True"

    def test_star_import(self):
        """from aliyun_sms_connector import * binds every name in __all__."""
        namespace: dict = {}
        exec("from aliyun_sms_connector import *", namespace)  # noqa: S102
        assert set(aliyun_sms_connector.__all__) <= set(namespace)


class TestNames:
    @pytest.mark.parametrize("name", aliyun_sms_connector.__all__)
    def test_each_name_is_its_module_object(self, name):
        """Each public name is the very object its private module defines."""
        where = aliyun_sms_connector._WHERE[name]
        module = importlib.import_module(f"aliyun_sms_connector.{where}")
        assert getattr(aliyun_sms_connector, name) is getattr(module, name)

    def test_the_map_covers_exactly_all(self):
        """Every name in __all__ has a module, and the map holds nothing else."""
        assert set(aliyun_sms_connector._WHERE) == set(aliyun_sms_connector.__all__)

    def test_dir_lists_the_public_names(self):
        """dir() shows the public names before they are first used."""
        assert set(aliyun_sms_connector.__all__) <= set(dir(aliyun_sms_connector))

    def test_unknown_name(self):
        """An unknown name is the usual AttributeError."""
        with pytest.raises(AttributeError, match="has no attribute 'Nope'"):
            aliyun_sms_connector.Nope  # noqa: B018

    @pytest.mark.parametrize("module", ["emulator", "verify", "pytest_plugin", "_cli.main"])
    def test_submodules_still_import(self, module):
        """Public and private submodules import as before."""
        assert importlib.import_module(f"aliyun_sms_connector.{module}")
