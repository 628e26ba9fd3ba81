"""The machine probe and ``sandbox doctor`` say what KVM offers, and never crash."""
from __future__ import annotations

import json
from argparse import Namespace

import pytest

from sandbox.backends.kvm.probe import KvmProbe, probe
from sandbox.cli import doctor_cmd


def fake_machine(tmp_path, flags: str, modules: dict[str, dict[str, str]]):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nmodel name\t: Test CPU\nflags\t\t: fpu pae {flags}\n")
    sys_module = tmp_path / "module"
    for name, params in modules.items():
        (sys_module / name / "parameters").mkdir(parents=True)
        for key, value in params.items():
            (sys_module / name / "parameters" / key).write_text(value + "\n")
    sys_module.mkdir(exist_ok=True)
    return str(cpuinfo), str(sys_module)


def test_no_device_points_at_unicorn(tmp_path):
    cpuinfo, sys_module = fake_machine(tmp_path, "", {})
    found = probe(str(tmp_path / "kvm"), sys_module, cpuinfo)
    assert not found.usable and found.mode == "unavailable"
    assert "does not exist" in found.problem() and "Unicorn" in found.problem()
    assert found.summary().startswith("KVM: unavailable: ")


def test_a_device_that_is_not_kvm(tmp_path):
    cpuinfo, sys_module = fake_machine(tmp_path, "", {})
    not_kvm = tmp_path / "kvm"
    not_kvm.write_text("")
    found = probe(str(not_kvm), sys_module, cpuinfo)
    assert not found.usable and "Unicorn" in found.problem()


def test_cpu_flags_modules_and_nested(tmp_path):
    cpuinfo, sys_module = fake_machine(tmp_path, "vmx hypervisor",
                                       {"kvm": {}, "kvm_intel": {"nested": "Y"}})
    found = probe(str(tmp_path / "kvm"), sys_module, cpuinfo)
    assert found.cpu_vendor_flag == "vmx" and found.host_is_vm
    assert found.modules == ["kvm", "kvm_intel"] and found.nested == "Y"
    assert not found.paravirtual
    assert "Intel VT-x" in found.summary()


def test_paravirtual_kvm_is_said_to_emulate_ring_0():
    pvm = KvmProbe(present=True, openable=True, api_version=12, modules=["kvm", "kvm_pvm"],
                   capabilities={"KVM_CAP_USER_MEMORY": 1, "KVM_CAP_READONLY_MEM": 1,
                                 "KVM_CAP_IMMEDIATE_EXIT": 1, "KVM_CAP_NR_MEMSLOTS": 32764})
    assert pvm.usable and pvm.mode == "paravirtual" and pvm.fallback
    summary = " ".join(pvm.summary().split())        # unwrapped
    assert "emulator" in summary and "int/iret" in summary and "single-steps 32-bit ring-3" in summary
    assert "Still impossible here: 32-bit and PAE paging" in summary
    assert "deterministic mode" in summary and "Unicorn-only" in summary
    hardware = KvmProbe(**{**pvm.__dict__, "modules": ["kvm", "kvm_amd"], "cpu_vendor_flag": "svm"})
    assert hardware.mode == "hardware" and "natively in every mode" in hardware.summary()
    assert not hardware.fallback                     # VT-x/AMD-V does it all: no emulation fallback


def test_the_start_up_line_names_the_case_and_the_clock():
    """What ``sandbox run --backend kvm`` prints first (one line on stderr)."""
    pvm = KvmProbe(present=True, openable=True, api_version=12, modules=["kvm", "kvm_pvm"],
                   capabilities={"KVM_CAP_USER_MEMORY": 1, "KVM_CAP_READONLY_MEM": 1,
                                 "KVM_CAP_IMMEDIATE_EXIT": 1, "KVM_CAP_NR_MEMSLOTS": 32764})
    hardware = KvmProbe(**{**pvm.__dict__, "modules": ["kvm", "kvm_intel"], "cpu_vendor_flag": "vmx"})
    for found, case in ((pvm, "KVM paravirtual: kvm_pvm"), (hardware, "KVM hardware: VT-x/AMD-V")):
        line = found.startup_line()
        assert "\n" not in line and case in line
        assert "deterministic mode is Unicorn-only" in line
    assert "no 32-bit paging" in pvm.startup_line()
    missing = KvmProbe(present=False)
    assert missing.startup_line().startswith("sandbox: KVM unavailable: cannot be used (")


def test_missing_capability_makes_kvm_unusable():
    old = KvmProbe(present=True, openable=True, api_version=12, modules=["kvm", "kvm_intel"],
                   capabilities={"KVM_CAP_USER_MEMORY": 1, "KVM_CAP_NR_MEMSLOTS": 509})
    assert not old.usable
    assert "KVM_CAP_READONLY_MEM" in old.problem()


def test_probing_this_machine_never_raises():
    found = probe()
    assert found.mode in ("unavailable", "paravirtual", "hardware")
    json.dumps(found.to_dict())                                # serialisable as is


def test_doctor_prints_engines_and_kvm(capsys, monkeypatch):
    monkeypatch.setattr(doctor_cmd, "extra_lines", lambda: ["deterministic clock: test clock"])
    assert doctor_cmd.run(Namespace(json=False)) == 0
    out = capsys.readouterr().out
    assert "Unicorn: 2.1.4" in out and "KVM: " in out
    assert out.rstrip().endswith("deterministic clock: test clock")


def test_doctor_json(capsys):
    assert doctor_cmd.run(Namespace(json=True)) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["unicorn"]["available"] and info["kvm"]["mode"] in ("unavailable", "paravirtual", "hardware")
    assert set(info) >= {"python", "host", "unicorn", "kvm", "extra"}


@pytest.mark.parametrize("argv", [["doctor"], ["doctor", "--json"]])
def test_doctor_is_a_subcommand(argv, capsys):
    from sandbox.cli.main import main
    assert main(argv) == 0
    assert capsys.readouterr().out
