"""What doctor and build-native read from the machine, without a build or a model (the fast tier): CPU features from
/proc/cpuinfo text, the ARM variant to build for, and the missing prerequisites named with their fix.

This module must not import llama_cpp (conftest.py would make every test here slow)."""
import pytest

from glass_gguf.doctor import arm_cpu_variant, cpu_features

RASPBERRY_PI_5_CPUINFO = """\
processor\t: 0
BogoMIPS\t: 108.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp
CPU implementer\t: 0x41
CPU architecture: 8
CPU variant\t: 0x4
CPU part\t: 0xd0b
CPU revision\t: 1
"""


def test_doctor_reads_arm_features_from_cpuinfo():
    features = cpu_features(RASPBERRY_PI_5_CPUINFO)
    assert features == ["fp", "asimd", "fphp", "asimdhp", "asimddp"]
    assert arm_cpu_variant(features) == "armv8.2-a+dotprod"
    assert arm_cpu_variant(cpu_features(RASPBERRY_PI_5_CPUINFO.replace(" asimddp", ""))) == "armv8-a"


def test_doctor_reads_x86_flags_from_cpuinfo():
    assert cpu_features("processor\t: 0\nflags\t\t: fpu sse3 avx avx2 fma f16c\n") == ["sse3", "avx", "avx2", "fma", "f16c"]


def test_missing_prerequisites_are_named_with_their_fix(tmp_path, monkeypatch):
    from glass_gguf.native import build_tool

    tool = build_tool()
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no compiler, cmake, patch, cross toolchain
    with pytest.raises(tool.BuildError) as e:
        tool.check_prerequisites("aarch64")
    message = str(e.value)
    assert "aarch64-linux-gnu-g++" in message and "apt-get install -y crossbuild-essential-arm64" in message
    assert "cmake" in message and "apt-get install -y cmake" in message
    assert "patch" in message and "apt-get install -y patch" in message
    with pytest.raises(tool.BuildError, match="a C\\+\\+ compiler .*apt-get install -y g\\+\\+"):
        tool.check_prerequisites("host")
