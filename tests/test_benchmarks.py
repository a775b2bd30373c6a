"""benchmarks/table1.py (the paper's Table 1: Gatys optimization vs the network) at tiny settings, as a subprocess."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

TABLE1 = Path(__file__).resolve().parents[1] / "benchmarks" / "table1.py"


def test_table1_json(shared_data, vgg):  # shared_data: mosaic.jpg lives there; vgg: the weights resolved first
    done = subprocess.run([sys.executable, str(TABLE1), "--sizes", "32,40", "--lbfgs-iters", "1", "--reps", "1",
                           "--device", "cpu", "--json"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)  # one JSON document, nothing else on stdout
    assert result["benchmark"] == "table1" and result["model"] == "mosaic"
    assert result["iteration_counts"] == [100, 300, 500]
    assert result["lbfgs_timed_iterations"] == 1 and result["network_reps"] == 1
    assert result["device"] == "cpu" and result["precision"] in ("fp32", "bf16")
    assert result["threads"] >= 1 and result["torch"] and result["date"] and result["machine"]
    assert "not N iterations run" in result["method"]
    assert [r["size"] for r in result["rows"]] == [32, 40]
    for row in result["rows"]:
        per_iter = row["lbfgs_seconds_per_iteration"]
        assert per_iter > 0 and len(row["lbfgs_iteration_seconds"]) == 1
        assert len(row["network_call_seconds"]) == 1 and row["network_seconds"] > 0
        assert set(row["gatys_seconds"]) == set(row["speedup"]) == {"100", "300", "500"}
        for n, seconds in row["gatys_seconds"].items():
            assert math.isclose(seconds, int(n) * per_iter, rel_tol=1e-9)
            assert math.isclose(row["speedup"][n], seconds / row["network_seconds"], rel_tol=1e-9)


def test_table1_text():
    """The plain-text table: the paper's columns and the note that Gatys N is extrapolated."""
    sys.path.insert(0, str(TABLE1.parent))
    try:
        import table1
    finally:
        sys.path.remove(str(TABLE1.parent))
    row = {"size": 256, "lbfgs_seconds_per_iteration": 0.5, "gatys_seconds": {"100": 50.0, "300": 150.0, "500": 250.0},
           "network_seconds": 0.05, "speedup": {"100": 1000.0, "300": 3000.0, "500": 5000.0}}
    result = {"iteration_counts": [100, 300, 500], "rows": [row], "lbfgs_timed_iterations": 2, "model": "mosaic",
              "style_image": "/x/mosaic.jpg", "network_reps": 3, "precision": "bf16", "content": "/x/example.jpg",
              "machine": "CPU, 2 threads; torch 2", "device": "cpu", "date": "2026-01-01"}
    text = table1.format_table(result)
    assert "| Image size | Gatys 100 | Gatys 300 | Gatys 500 | Network | Speed-up vs 100 |" in text
    assert "| 256 x 256 | 50.00 | 150.00 | 250.00 | 0.0500 | 1,000x | 3,000x | 5,000x |" in text
    assert "not N iterations run" in text and "CPU, 2 threads" in text


INFERENCE = Path(__file__).resolve().parents[1] / "benchmarks" / "inference.py"


def test_inference_benchmark_json():
    done = subprocess.run([sys.executable, str(INFERENCE), "--sizes", "40,48x32", "--batch", "2", "--reps", "1",
                           "--backends", "torch", "--device", "cpu", "--json"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["machine"]["device"] and result["machine"]["versions"]["torch"]
    assert [r["case"] for r in result["rows"]] == ["40x40", "48x32", "256x256 x2"]
    for row in result["rows"]:
        torch_row = row["backends"]["torch"]
        assert torch_row["ms_per_image"] > 0 and torch_row["first_call_s"] > 0 and torch_row["psnr_db"] > 30
        assert math.isclose(torch_row["speedup"], row["fp32_eager_ms"] / torch_row["ms_per_image"], rel_tol=1e-6)
