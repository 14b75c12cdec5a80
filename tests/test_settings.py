"""The one place density, lambda and the thread count are checked and defaulted."""
import re

import pytest

from glass_gguf import settings
from glass_gguf.errors import SettingError


def test_density_and_lambda_ranges():
    assert settings.check_density(1) == 1.0 and settings.check_density("0.25") == 0.25
    assert settings.check_lambda(0) == 0.0 and settings.check_lambda(1.0) == 1.0
    for bad in (0.0, -0.5, 1.01):
        with pytest.raises(SettingError, match=rf"density must be in \(0, 1\], got {bad}"):
            settings.check_density(bad)
    for bad in (-0.01, 1.5):
        with pytest.raises(ValueError, match=rf"lambda must be in \[0, 1\], got {bad}"):
            settings.check_lambda(bad)


def test_settings_are_read_as_the_runtime_reads_them():
    # plain decimal numbers only, as glass_parse_float in the runtime patch: no hex floats, inf, nan, spaces, "_"
    assert settings.check_density("1e-1") == 0.1 and settings.check_lambda("+0.25") == 0.25
    for bad in ("0x1p-2", "nan", "inf", "-inf", "0_5", " 0.5", "0.5 ", "", "1e", "abc", "1e400"):
        with pytest.raises(SettingError, match="density must be (a plain decimal|a finite) number"):
            settings.check_density(bad)
    for bad in (float("nan"), float("inf"), True, None, [0.5]):
        with pytest.raises(SettingError, match="lambda must be a (finite )?number"):
            settings.check_lambda(bad)
    # the range is that of the float32 the C API receives: 1e-46 is 0 there, 1.00000001 is 1
    with pytest.raises(SettingError, match=r"density must be in \(0, 1\], got 1e-46"):
        settings.check_density("1e-46")
    assert settings.check_density("1.00000001") == 1.0


def test_default_lambda_is_griffin_without_a_prior():
    assert settings.default_lambda(has_prior=True) == 0.5
    assert settings.default_lambda(has_prior=False) == 0.0
    assert settings.DEFAULT_DENSITY == 0.5


CPUINFO_2_CORES_4_THREADS = "".join(
    f"processor\t: {p}\nphysical id\t: 0\ncore id\t\t: {p % 2}\n\n" for p in range(4))


def test_physical_cores_count_smt_siblings_once():
    assert settings.physical_cores(CPUINFO_2_CORES_4_THREADS) == min(2, settings.physical_cores(""))
    assert settings.physical_cores("") >= 1          # nothing known: the CPUs this process may use


@pytest.mark.slow   # llama_cpp.glass_policy comes with the patched build, which the fast tier does not need
def test_llama_cpp_python_reads_the_glass_variables_as_the_tools_read_their_flags():
    from llama_cpp.glass_policy import settings_from_env

    assert settings_from_env({}) == {}
    assert settings_from_env({"GLASS_GGUF": "on", "GLASS_GGUF_DENSITY": "1e-1", "GLASS_GGUF_LAMBDA": "0",
                              "GLASS_GGUF_MODE": "manual", "GLASS_GGUF_WARMUP": "8", "GLASS_GGUF_REFRESH": "0",
                              "GLASS_GGUF_TOKEN_FRACTION": "0.5"}) == {
        "switch": "on", "density": pytest.approx(0.1), "lambda": 0.0, "mode": "manual", "warmup": 8, "refresh": 0,
        "token_fraction": 0.5}
    for name, bad, reason in (("GLASS_GGUF_DENSITY", "2", r"not a number in \(0, 1\]"),
                              ("GLASS_GGUF_DENSITY", "1e-46", r"not a number in \(0, 1\]"),
                              ("GLASS_GGUF_LAMBDA", "nan", r"not a number in \[0, 1\]"),
                              ("GLASS_GGUF_TOKEN_FRACTION", "0x1p-1", r"not a number in \(0, 1\]"),
                              ("GLASS_GGUF_REFRESH", "1", "not 0 \\(off\\) or a period of at least 2 tokens"),
                              ("GLASS_GGUF_WARMUP", "-3", "not a count of tokens >= 0"),
                              ("GLASS_GGUF_MODE", "lazy", "not one of auto, manual"),
                              ("GLASS_GGUF", "yes", "not one of off, on, 0, 1")):
        with pytest.raises(ValueError, match=f"^{name}={re.escape(bad)} is {reason}"):
            settings_from_env({name: bad})
