"""bench/vs_trl.py records the facts of the machine that move a step time (issue 16's cross-machine question)."""


from bench_scripts import load

vs_trl = load("vs_trl.py")

CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
model\t\t: 207
model name\t: Intel(R) Xeon(R) Processor
flags\t\t: fpu sse2 avx avx2 fma avx512f avx512bw amx_tile amx_int8

processor\t: 1
model\t\t: 999
model name\t: another
flags\t\t: fpu
"""


def test_cpuinfo_gives_the_first_cpus_model_and_the_extensions_that_matter():
    facts = vs_trl.parse_cpuinfo(CPUINFO)
    assert facts == {"model_name": "Intel(R) Xeon(R) Processor", "model": "207", "logical_cpus": 2,
                     "isa": ["avx2", "fma", "avx512f", "amx_tile"]}  # in ISA_FLAGS order; avx512bw not listed
    assert vs_trl.parse_cpuinfo("") == {"model_name": None, "model": None, "logical_cpus": 0, "isa": []}


def test_machine_facts_name_the_threads_and_backends_in_use():
    import torch

    before = torch.get_num_threads()
    try:
        facts = vs_trl.machine_facts(1)
    finally:
        torch.set_num_threads(before)
    assert facts["torch_threads"] == 1
    assert any(line.startswith("ATen parallel backend") for line in facts["torch_parallel"])
    assert isinstance(facts["mkldnn"], bool) and isinstance(facts["env"], dict)
