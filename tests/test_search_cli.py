"""``aiflow-comm search``: JSON schema, a user's model, fading and MCS options, plot, errors;
and accuracy measured through SplitLink."""

from __future__ import annotations

import json
import sys
import types

import pytest
import torch
from torch import nn

from aiflow_comm.cli import main
from aiflow_comm.search import INPUT_CUT, Codec, measure_accuracy, profile_model
from aiflow_comm.search.models import small_cnn

BEST_KEYS = {"snr_db", "cut", "offload", "bits", "payload_bits", "latency_s", "device_s",
             "tx_s", "edge_s"}  # fmt: skip


def run_json(capsys, *argv: str) -> dict:
    assert main(["search", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_search_json_on_the_builtin_model(capsys):
    out = run_json(capsys, "--snr-db", "30", "0", "-20", "--bits", "32", "8", "4")
    assert [b["snr_db"] for b in out["best"]] == [30.0, 0.0, -20.0]
    names = profile_model(small_cnn(), torch.zeros(1, 3, 32, 32)).names
    for best in out["best"]:
        assert set(best) >= BEST_KEYS
        assert best["cut"] in names or (best["cut"] is None and not best["offload"])
        assert best["latency_s"] == pytest.approx(best["device_s"] + best["tx_s"] + best["edge_s"])
    assert out["best"][0]["offload"] and not out["best"][-1]["offload"]
    assert out["best"][0]["payload_bits"] > 0 and out["best"][-1]["payload_bits"] == 0
    assert len(out["plans"]) == 3 * (1 + 3 * len(names))  # every plan in every state
    assert out["expected"]["policy"]["latency_s"] > 0 and out["pareto"]


def make_model() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(48, 64), nn.ReLU(), nn.Linear(64, 4))


def test_search_user_model_with_fading_mcs_and_cloud(capsys, monkeypatch):
    module = types.ModuleType("user_models_for_search")
    module.make_model = make_model
    monkeypatch.setitem(sys.modules, "user_models_for_search", module)
    out = run_json(
        capsys, "--model", "user_models_for_search:make_model", "--input-shape", "1,3,4,4",
        "--fading", "rayleigh", "--mcs", "nr-cqi", "--snr-db", "20", "--cloud-flops", "1e12",
        "--device-flops", "1e6",
    )  # fmt: skip
    assert {p["cut"] for p in out["plans"]} == {None, INPUT_CUT, "0", "1", "2"}
    assert any(p["cut2"] is not None for p in out["plans"])
    assert out["best"][0]["offload"]


def test_search_table_and_plot(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "search.png"
    assert main(["search", "--snr-db", "20", "-10", "--plot", str(path)]) == 0
    text = capsys.readouterr().out
    assert "expected over the SNR states" in text and "<input>" in text
    assert path.stat().st_size > 1000


def test_search_counts_each_codec_once(capsys):
    """--bits 32 32 4 4 searched every plan twice, and counted the copies in the front."""
    twice = run_json(capsys, "--snr-db", "20", "--bits", "32", "32", "4", "4")
    once = run_json(capsys, "--snr-db", "20", "--bits", "32", "4")
    assert twice == once


def test_search_with_an_accuracy_file(capsys, tmp_path):
    table = tmp_path / "acc.json"
    table.write_text(json.dumps({"<input>@4b": 0.5, "<input>@8b": 0.91, "lossless": 0.92}))
    out = run_json(capsys, "--snr-db", "30", "--bits", "32", "8", "4",
                   "--accuracy", str(table), "--min-accuracy", "0.9")  # fmt: skip
    assert (out["best"][0]["cut"], out["best"][0]["bits"]) == (INPUT_CUT, 8)


def test_search_table_names_the_pareto_axes(capsys, tmp_path):
    """With an accuracy file the front is over (latency, energy, accuracy): the table said
    "(expected latency, energy)" and counted a front that was not of those two."""
    table = tmp_path / "acc.json"
    table.write_text(json.dumps({"<input>@4b": 0.5, "<input>@8b": 0.91, "lossless": 0.92}))
    argv = ["search", "--snr-db", "30", "--bits", "32", "8", "4", "--device-flops", "1e8"]
    assert main([*argv, "--accuracy", str(table)]) == 0
    last = capsys.readouterr().out.splitlines()[-1]
    assert last.startswith("Pareto front (expected latency, energy, accuracy): ")
    assert main(argv) == 0
    last = capsys.readouterr().out.splitlines()[-1]
    assert last.startswith("Pareto front (expected latency, energy): ")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--bandwidth-hz", "-1"], "bandwidth_hz must be a finite number > 0"),
        (["--model", "nowhere"], "--model must be one of"),
        (["--model", "torch.nn:Flatten"], "no cut point"),
        (["--input-shape", "1,x"], "--input-shape"),
        (["--device-flops", "0"], "flops_per_s"),
        (["--input-shape", "1,3,32"], r"fails on a float32 input of shape \(1, 3, 32\)"),
        # An IndexError from Flatten: a traceback, where a RuntimeError gave this line.
        (["--model", "deep-mlp", "--input-shape", "3072"], r"fails on .* \(3072,\).*Dimension"),
        (["--accuracy", "/nonexistent.json"], "--accuracy /nonexistent.json"),
        (["--cloud-flops", "1e12", "--backhaul-snr-db", "nan"], "--backhaul-snr-db .*snr_db"),
        (["--cloud-flops", "1e12", "--backhaul-bandwidth-hz", "-5"], "--backhaul-bandwidth-hz"),
        (["--cloud-flops", "1e12", "--backhaul-propagation-s", "-1"], "--backhaul-propagation-s"),
        # Options the others made meaningless were ignored without a word.
        (["--device-scale", "2"], "--device-scale scales the times --measure takes"),
        (["--measure", "--cloud-scale", "5"], "--cloud-scale needs a cloud tier"),
        (["--plot", ""], "--plot needs a file path"),
    ],
)
def test_search_bad_arguments(argv, message):
    with pytest.raises(SystemExit, match=message):
        main(["search", *argv])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[1, 2]", "must hold a JSON object"),
        ('{"0@x": 0.5}', "keys must be 'cut@bits'"),
        ('{"inptu@8": 0.5}', "no cut 'inptu' in the model; its cuts: <input>"),  # misspelt
        ('{"<input>@8": "high"}', "values must be finite numbers; got 'high' for '<input>@8'"),
        ('{"lossless": true}', "values must be finite numbers; got True for 'lossless'"),
        ('{"<input>@8": Infinity}', "values must be finite numbers; got inf for '<input>@8'"),
        ('{"lossless": NaN}', "values must be finite numbers; got nan for 'lossless'"),
        ('{"<input>@8": }', r"acc.json: not JSON \(Expecting value: line 1 column 15"),
    ],
)
def test_search_bad_accuracy_files(tmp_path, content, message):
    table = tmp_path / "acc.json"
    table.write_text(content)
    with pytest.raises(SystemExit, match=message):
        main(["search", "--accuracy", str(table)])


def test_search_model_from_the_working_directory(capsys, tmp_path, monkeypatch):
    """The console script does not put the working directory on sys.path (python -m does):
    a module beside the user was not found. A constructor raising anything but ValueError,
    TypeError or KeyError ended in a traceback."""
    (tmp_path / "models_beside_me.py").write_text(
        "from torch import nn\n"
        "def mlp():\n    return nn.Sequential(nn.Flatten(), nn.Linear(12, 4))\n"
        "def broken():\n    raise RuntimeError('no weights file')\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    monkeypatch.delitem(sys.modules, "models_beside_me", raising=False)
    out = run_json(capsys, "--model", "models_beside_me:mlp", "--input-shape", "1,3,4")
    assert {p["cut"] for p in out["plans"]} == {None, "<input>", "0"}
    assert str(tmp_path) not in sys.path  # only while loading
    with pytest.raises(SystemExit, match="calling it raised RuntimeError: no weights file"):
        main(["search", "--model", "models_beside_me:broken", "--input-shape", "1,3,4"])


def test_search_plot_path_without_suffix_or_folder(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    assert main(["search", "--snr-db", "20", "--plot", str(tmp_path / "new" / "front")]) == 0
    assert (tmp_path / "new" / "front.png").stat().st_size > 1000


def test_measure_accuracy_through_split_links():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    x = torch.randn(64, 8)
    y = model(x).argmax(dim=-1)  # labels the model gets right: lossless accuracy 1
    table = measure_accuracy(model, [(x, y)], [INPUT_CUT, "1"], [Codec(32), Codec(8), Codec(2)])
    assert table.lossless == 1.0
    assert (INPUT_CUT, Codec(32)) not in table.values  # lossless over a perfect link
    assert table.values[("1", Codec(8))][0] > 0.9
    assert table.values[("1", Codec(2))][0] <= table.values[("1", Codec(8))][0]


def test_search_plot_path_is_checked_before_the_search(capsys, tmp_path):
    """A plot file matplotlib cannot write raised a traceback after the search and its table."""
    pytest.importorskip("matplotlib")
    with pytest.raises(SystemExit, match=r"search: --plot: cannot plot to .*no format 'xyz'"):
        main(["search", "--snr-db", "20", "--plot", str(tmp_path / "front.xyz")])
    assert capsys.readouterr().out == ""


def test_search_plot_to_pgf_without_latex_is_refused_before_the_search(capsys, tmp_path):
    """pgf is a format matplotlib lists, but saving needs LaTeX: a traceback after the table."""
    pytest.importorskip("matplotlib")
    import shutil

    from matplotlib import rcParams

    if shutil.which(rcParams["pgf.texsystem"]) is not None:
        pytest.skip(f"{rcParams['pgf.texsystem']} is installed here: pgf can be written")
    with pytest.raises(SystemExit, match=r"--plot: cannot plot to .*pgf format needs"):
        main(["search", "--snr-db", "20", "--plot", str(tmp_path / "front.pgf")])
    assert capsys.readouterr().out == ""


def test_a_dead_backhaul_warns_nothing(capsys):
    """0 bits x inf seconds a bit over a dead backhaul: numpy's 'invalid value' warning."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = run_json(capsys, "--snr-db", "20", "--cloud-flops", "1e12", "--backhaul-snr-db",
                       "-300")  # fmt: skip
    assert all(out["plans"][i]["cut2"] is None for i in out["pareto"])  # no cloud plan


def test_search_plot_with_every_power_zero_draws_no_warning(capsys, tmp_path):
    """Every energy 0 on a log axis: matplotlib warned and drew a broken energy axis."""
    pytest.importorskip("matplotlib")
    import warnings

    path = tmp_path / "search.png"
    argv = ["search", "--snr-db", "20", "--device-power", "0", "--tx-power", "0",
            "--idle-power", "0", "--plot", str(path)]  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert main(argv) == 0
    assert path.stat().st_size > 1000


def test_search_plot_with_no_feasible_plan_draws_no_warning(capsys, tmp_path):
    """Every plan infeasible: the latency panel had no bars and legend() warned."""
    pytest.importorskip("matplotlib")
    import warnings

    table = tmp_path / "acc.json"
    table.write_text(json.dumps({"lossless": 0.5}))
    path = tmp_path / "search.png"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert main(["search", "--snr-db", "10", "--accuracy", str(table), "--min-accuracy",
                     "0.9", "--plot", str(path)]) == 0  # fmt: skip
    assert "no feasible plan" in capsys.readouterr().out and path.stat().st_size > 1000


def test_a_reader_that_leaves_early_gets_no_traceback():
    """`aiflow-comm search | head` printed a BrokenPipeError traceback when head exited first."""
    import subprocess

    command = [sys.executable, "-m", "aiflow_comm.cli", "search", "--model", "deep-mlp",
               "--snr-db", "10"]  # fmt: skip
    run = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    run.stdout.close()  # the reader is gone before the first line
    stderr = run.stderr.read().decode()
    assert run.wait() == 141 and "Traceback" not in stderr, stderr
