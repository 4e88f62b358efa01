import subprocess
import sys


def test_import_is_light():
    code = ("import sys, s2distill, s2distill.cli, s2distill.pipeline, s2distill.config, s2distill.curate;"
            "import s2distill.backends.llamacpp, s2distill.backends.openai;"
            "heavy = [m for m in ('torch', 'transformers', 'llama_cpp', 'peft', 'trl', 'vllm', 'datasets') "
            "if m in sys.modules]; print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


def test_cli_ls_and_validate(tmp_path):
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    r = subprocess.run([sys.executable, "-m", "s2distill.cli", "ls"], capture_output=True, text=True)
    assert r.returncode == 0 and "tasks: arithmetic, coin_flip, dataset, gsm8k, judge, last_letter" in r.stdout
    assert "methods: bsm, cot, direct, rar, s2a" in r.stdout and "swap_consistency" in r.stdout
    r = subprocess.run([sys.executable, "-m", "s2distill.cli", "validate", str(root / "configs" / "demo.yaml"),
                        "method.temprature=1"], capture_output=True, text=True)
    assert r.returncode == 2 and "did you mean 'temperature'" in r.stderr
    r = subprocess.run([sys.executable, "-m", "s2distill.cli", "report", str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 2 and "no report" in r.stderr
