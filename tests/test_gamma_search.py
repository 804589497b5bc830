"""``mple proxies tune-gamma`` and ``mple_metrics.proxies.gamma_search``: the γ search of Appendix F on
hand-made KD directories, against sacrebleu and a brute force over every γ on the grid."""

from __future__ import annotations

import itertools
import json
import re
import traceback
from pathlib import Path

import numpy as np
import pytest
import sacrebleu

from mple_metrics.cli import main
from mple_metrics.data import write_candidates_manifest
from mple_metrics.proxies.gamma_search import (RAW_NAME, bleu_matrices, gamma_grid, l_target, read_kd_candidates,
                                               search_gamma, select_candidates, tune_gamma)

SOURCES = ["ein kleines Haus", "der Hund bellt laut", "es regnet heute", "wir essen Brot .", "gute Nacht"]
RAW = ["a small house", "the dog barks loudly", "it is raining today", "we eat bread .", "good night"]
EXTRA = [  # {split}.raw.ref1, .raw.ref2; "" = no extra reference for that sentence
    ["a little house", "the dog is barking loudly", "", "we are eating bread.", "good night !"],
    ["one small house", "the dog barks loud", "today it rains", "", "night , good"],
]
TEACHERS = [
    ["a small house .", "the dog barks", "it rains today", "we eat bread .", "good night"],
    ["a little house", "the dog is barking loudly", "it is raining today", "we eat the bread", ""],
]


def write_kd(directory: Path, outputs: list[str], *, split: str = "valid", sources=SOURCES, raw=RAW,
             extra=EXTRA) -> Path:
    """A KD dataset directory as ``mple distill`` leaves it (the files tune-gamma reads + kd.json)."""
    directory.mkdir(parents=True)
    files = {f"{split}.src": sources, f"{split}.tgt": outputs, f"{split}.raw.tgt": raw}
    files.update({f"{split}.raw.ref{k + 1}": column for k, column in enumerate(extra)})
    for name, lines in files.items():
        (directory / name).write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    (directory / "kd.json").write_text(json.dumps({"teacher": str(directory)}) + "\n", encoding="utf-8")
    return directory


@pytest.fixture
def kd_dirs(tmp_path) -> list[Path]:
    return [write_kd(tmp_path / f"teacher{i}", outputs) for i, outputs in enumerate(TEACHERS)]


def sacrebleu_matrices(candidates, references):
    """(N, C, C) and (N, C) as :func:`bleu_matrices` defines them, straight from sacrebleu."""
    n_cand = len(candidates[0])
    pairwise = np.array([[[sacrebleu.sentence_bleu(row[i], [row[j]]).score for j in range(n_cand)]
                          for i in range(n_cand)] for row in candidates])
    versus = np.array([[np.mean([sacrebleu.sentence_bleu(c, [r]).score for r in refs]) for c in row]
                       for row, refs in zip(candidates, references)])
    return pairwise, versus


def brute_force(candidates, references, grid, beta):
    """L_target of every γ on the grid (itertools order), from sacrebleu, in plain Python loops."""
    pairwise, versus = sacrebleu_matrices(candidates, references)
    n_cand = len(candidates[0])
    table = {}
    for gamma in itertools.product(grid, repeat=n_cand):
        total = 0.0
        for n in range(len(candidates)):
            # T = argmin_k -β Σ_m γ_m S(Γ_m, Γ_k), m = k included; ties to the earlier candidate.
            costs = [-beta * sum(gamma[m] * pairwise[n][k][m] for m in range(n_cand)) for k in range(n_cand)]
            total += versus[n][costs.index(min(costs))]
        table[gamma] = -beta * total / len(candidates)
    return table, pairwise, versus


# ----------------------------------------------------------------------------- reading


def test_reads_candidates_raw_last_and_all_references(kd_dirs):
    data = read_kd_candidates(kd_dirs, "valid")
    assert data.names == ("teacher0", "teacher1", RAW_NAME)
    assert data.directories == tuple(kd_dirs)
    assert len(data) == 5 and data.sources == SOURCES
    assert data.candidates[0] == [TEACHERS[0][0], TEACHERS[1][0], RAW[0]]
    assert data.references[2] == [RAW[2], EXTRA[1][2]]  # an empty extra reference is no reference
    assert data.references[0] == [RAW[0], EXTRA[0][0], EXTRA[1][0]]


def test_candidate_directory_expands_in_manifest_order(tmp_path):
    cand = tmp_path / "cand"
    write_kd(cand / "big", TEACHERS[1])
    write_kd(cand / "small", TEACHERS[0])
    write_candidates_manifest(cand, [{"name": "small", "dir": "small"}, {"name": "big", "dir": "big"}])
    data = read_kd_candidates([cand])
    assert [d.name for d in data.directories] == ["small", "big"]
    assert data.names == ("small", "big", RAW_NAME)
    assert data.candidates[1] == [TEACHERS[0][1], TEACHERS[1][1], RAW[1]]
    # Same clashing names in two candidate directories get their parent's name.
    other = tmp_path / "other"
    write_kd(other / "small", TEACHERS[1])
    write_candidates_manifest(other, [{"name": "small", "dir": "small"}])
    assert read_kd_candidates([cand, other]).names == ("cand/small", "cand/big", "other/small", RAW_NAME)


# ----------------------------------------------------------------------------- BLEU


def test_bleu_matrices_equal_sacrebleu_on_the_text(kd_dirs):
    data = read_kd_candidates(kd_dirs)
    pairwise, versus = bleu_matrices(data.candidates, data.references)
    expected_pairwise, expected_versus = sacrebleu_matrices(data.candidates, data.references)
    assert pairwise.shape == (5, 3, 3) and versus.shape == (5, 3)
    np.testing.assert_allclose(pairwise, expected_pairwise, rtol=0, atol=1e-9)
    np.testing.assert_allclose(versus, expected_versus, rtol=0, atol=1e-9)
    # The empty output of teacher 1 on the last sentence scores 0 everywhere, itself included.
    assert pairwise[4, 1].tolist() == [0.0, 0.0, 0.0] and pairwise[4, 0, 0] == pytest.approx(100.0)


def test_bleu_matrices_on_awkward_text():
    rows = [["Hello, world!", "hello world", "Hello , world !"],
            ["It's 3.5% (approx.) -- ok?", "it is 3.5 % approx", "It's 3.5% (approx.) -- ok?  "],
            ["Ünïcödé — “quotes”", "unicode quotes", "Ünïcödé — “quotes”"]]
    refs = [["Hello world!", "hello, world"], ["It is 3.5% (approx.)"], ["Ünïcödé “quotes”"]]
    pairwise, versus = bleu_matrices(rows, refs, chunk=2)  # two kernel calls, one vocabulary
    expected_pairwise, expected_versus = sacrebleu_matrices(rows, refs)
    np.testing.assert_allclose(pairwise, expected_pairwise, rtol=0, atol=1e-9)
    np.testing.assert_allclose(versus, expected_versus, rtol=0, atol=1e-9)


# ----------------------------------------------------------------------------- selection and search


def test_eq21_sums_over_every_candidate_including_the_chosen_one():
    # Candidate 0 is close to candidate 1; candidate 1 is close to nobody else.  Without the m = k
    # term candidate 0 would win (30 + 20 > 30 + 10); with S(T, T) = 100 counted, γ decides.
    pairwise = np.array([[[100.0, 30.0, 20.0], [30.0, 100.0, 10.0], [20.0, 10.0, 100.0]]])
    assert select_candidates(pairwise, [1, 1, 1]).tolist() == [0]
    assert select_candidates(pairwise, [1, 1.2, 1]).tolist() == [1]  # 100·1.2 + 30 + 10 > 30·1.2 + 100 + 20
    no_self = pairwise * (1 - np.eye(3))
    assert select_candidates(no_self, [1, 1.2, 1]).tolist() == [0]


def test_a_huge_weight_picks_its_candidate(kd_dirs):
    data = read_kd_candidates(kd_dirs)
    pairwise, _ = bleu_matrices(data.candidates, data.references)
    for k in range(3):
        gamma = [1.0] * 3
        gamma[k] = 1e6
        chosen = select_candidates(pairwise, gamma).tolist()
        for n, row in enumerate(data.candidates):
            if not row[k]:  # an empty candidate scores 0 even against itself: never chosen
                assert chosen[n] != k
            else:  # candidate k, or the first candidate with the same text (a tie, to the earlier)
                assert chosen[n] == row.index(row[k])
        assert chosen.count(k) >= 2


def test_ties_go_to_the_earlier_candidate(tmp_path):
    a = write_kd(tmp_path / "a", TEACHERS[0])
    b = write_kd(tmp_path / "b", TEACHERS[0])  # the same outputs: equal scores everywhere
    data = read_kd_candidates([a, b])
    pairwise, versus = bleu_matrices(data.candidates, data.references)
    assert 1 not in select_candidates(pairwise, [1, 1, 1]).tolist()
    result = search_gamma(pairwise, versus, grid=gamma_grid(1, 2, 0.5), method="exhaustive")
    assert 1 not in result.selection.tolist()


@pytest.mark.parametrize("beta", [0.2, 1.0])
def test_search_against_brute_force_over_the_grid(kd_dirs, beta):
    """K = 2 teachers + raw: every γ on the grid, BLEUs from sacrebleu, loops in plain Python."""
    data = read_kd_candidates(kd_dirs)
    grid = gamma_grid(1, 3, 0.25)
    table, pairwise, versus = brute_force(data.candidates, data.references, list(grid), beta)
    best = min(table.values())
    ones = (1.0, 1.0, 1.0)

    exhaustive = search_gamma(pairwise, versus, beta=beta, grid=grid, method="exhaustive")
    assert exhaustive.method == "exhaustive" and exhaustive.evaluations == len(table)
    assert exhaustive.l_target == pytest.approx(best, abs=1e-9)
    # Its γ: among the minimisers, the fewest grid steps from all ones, then the smallest.
    winners = [g for g, v in table.items() if v <= best + 1e-9]
    steps = {g: sum(abs(x - 1.0) / 0.25 for x in g) for g in winners}
    assert exhaustive.gamma == min(winners, key=lambda g: (round(steps[g]), g))

    coordinate = search_gamma(pairwise, versus, beta=beta, grid=grid, method="coordinate")
    assert coordinate.method == "coordinate" and coordinate.start == ones
    assert coordinate.l_target == pytest.approx(table[coordinate.gamma], abs=1e-9)
    assert coordinate.l_target >= exhaustive.l_target - 1e-12
    assert coordinate.l_target <= table[ones] + 1e-12
    for c in range(3):  # a coordinate-wise minimum: no single weight change improves it
        for value in grid:
            moved = list(coordinate.gamma)
            moved[c] = float(value)
            assert table[tuple(moved)] >= coordinate.l_target - 1e-9

    for result in (exhaustive, coordinate):
        assert result.ones_l_target == pytest.approx(table[ones], abs=1e-9)
        for k in range(3):
            assert result.single_l_target[k] == pytest.approx(-beta * versus[:, k].mean(), abs=1e-9)
        assert result.oracle_l_target == pytest.approx(-beta * versus.max(axis=1).mean(), abs=1e-9)
        assert result.oracle_l_target <= result.l_target + 1e-12
        assert l_target(versus, result.selection, beta) == pytest.approx(result.l_target, abs=1e-12)
        assert sum(result.selection_frequency()) == pytest.approx(1.0)
    # "auto" is exhaustive on a grid this small.
    assert search_gamma(pairwise, versus, beta=beta, grid=grid).method == "exhaustive"


def test_search_finds_the_known_best_candidate(tmp_path):
    """References equal to teacher 1's outputs: always choosing teacher 1 is the best selection,
    and a grid wide enough reaches it."""
    extra = [TEACHERS[1][:4] + ["good night"]]
    dirs = [write_kd(tmp_path / f"t{i}", TEACHERS[i], extra=extra) for i in range(2)]
    tuning = tune_gamma(dirs, beta=0.2, low=1, high=9, step=1, references="extra", method="coordinate")
    result = tuning.result
    assert result.l_target == pytest.approx(result.oracle_l_target, abs=1e-12)
    assert result.selection[:4].tolist() == [1, 1, 1, 1]
    assert result.l_target < result.ones_l_target


def test_coordinate_descent_on_a_large_random_problem_is_deterministic():
    rng = np.random.default_rng(0)
    pairwise = rng.uniform(0, 100, size=(300, 5, 5))
    pairwise[:, range(5), range(5)] = 100.0
    versus = rng.uniform(0, 100, size=(300, 5))
    first = search_gamma(pairwise, versus, grid=gamma_grid(1, 3, 0.1))
    assert first.method == "coordinate"  # 21**5 points: too many for "auto" to try them all
    again = search_gamma(pairwise.copy(), versus.copy(), grid=gamma_grid(1, 3, 0.1))
    assert (first.gamma, first.l_target, first.sweeps) == (again.gamma, again.l_target, again.sweeps)
    assert first.l_target <= first.ones_l_target
    assert first.sweeps >= 1 and first.evaluations == first.sweeps * 5 * 21


def test_gamma_grid():
    assert gamma_grid(1, 3, 0.1).tolist() == [round(1 + 0.1 * i, 10) for i in range(21)]
    assert gamma_grid(0.5, 1, 0.2).tolist() == [0.5, 0.7, 0.9]
    assert gamma_grid(2, 2, 0.1).tolist() == [2.0]
    for args, match in [((3, 1, 0.1), "range"), ((-1, 1, 0.1), "range"), ((1, 3, 0), "step"),
                        ((1, 3, float("nan")), "step"), ((1, 3, 1e-9), "values per weight")]:
        with pytest.raises(ValueError, match=match):
            gamma_grid(*args)


def test_references_extra_leaves_out_sentences_without_one(kd_dirs):
    everything = tune_gamma(kd_dirs, references="all", method="exhaustive", step=0.5)
    extra = tune_gamma(kd_dirs, references="extra", method="exhaustive", step=0.5)
    assert everything.sentences_scored == 5
    assert extra.sentences_scored == 5  # every sentence has at least one extra reference here
    assert everything.references_per_sentence == pytest.approx(13 / 5)
    assert extra.references_per_sentence == pytest.approx(8 / 5)
    # With the raw target among the references, the raw candidate scores an exact match.
    assert everything.result.single_l_target[2] < extra.result.single_l_target[2]


# ----------------------------------------------------------------------------- errors


def test_directories_must_hold_the_same_data(tmp_path):
    good = write_kd(tmp_path / "good", TEACHERS[0])
    cases = {
        "other-source": dict(sources=SOURCES[:2] + ["es schneit"] + SOURCES[3:]),
        "other-raw": dict(raw=RAW[:4] + ["good evening"]),
        "other-ref": dict(extra=[EXTRA[0], EXTRA[1][:1] + ["x"] + EXTRA[1][2:]]),
        "fewer-refs": dict(extra=EXTRA[:1]),
        "fewer-sentences": dict(sources=SOURCES[:4], raw=RAW[:4], extra=[e[:4] for e in EXTRA]),
    }
    patterns = {"other-source": r"other-source: line 3 of valid\.src differs",
                "other-raw": r"other-raw: line 5 of valid\.raw\.tgt differs",
                "other-ref": r"other-ref: line 2 of valid\.raw\.ref2 differs",
                "fewer-refs": r"fewer-refs: .* 1 extra reference files .* has 2",
                "fewer-sentences": r"fewer-sentences: .* 4 sentences but .*good has 5"}
    for name, changes in cases.items():
        outputs = TEACHERS[1][:len(changes.get("sources", SOURCES))]
        bad = write_kd(tmp_path / name, outputs, **changes)
        with pytest.raises(ValueError, match=patterns[name]):
            read_kd_candidates([good, bad])


def test_bad_directories_are_named(tmp_path):
    short = write_kd(tmp_path / "short", TEACHERS[0][:4])
    with pytest.raises(ValueError, match=r"short: valid\.tgt has 4 lines but valid\.src has 5"):
        read_kd_candidates([short])
    good = write_kd(tmp_path / "good", TEACHERS[0])
    with pytest.raises(FileNotFoundError, match=r"good has no test\.src"):
        read_kd_candidates([good], "test")
    with pytest.raises(ValueError, match="named twice"):
        read_kd_candidates([good, tmp_path / "good"])
    gap = write_kd(tmp_path / "gap", TEACHERS[0])
    (gap / "valid.raw.ref2").rename(gap / "valid.raw.ref3")
    with pytest.raises(ValueError, match=r"without gaps"):
        read_kd_candidates([gap])
    with pytest.raises(ValueError, match="not a KD dataset directory"):
        read_kd_candidates([tmp_path])
    with pytest.raises(ValueError, match="at least one KD directory"):
        read_kd_candidates([])


def test_bad_library_arguments(kd_dirs):
    pairwise, versus = np.full((2, 3, 3), 50.0), np.full((2, 3), 40.0)
    for kwargs, match in [(dict(beta=0), "beta"), (dict(beta=float("inf")), "beta"), (dict(method="grid"), "method"),
                          (dict(grid=[2, 1]), "grid"), (dict(grid=[]), "grid")]:
        with pytest.raises(ValueError, match=match):
            search_gamma(pairwise, versus, **kwargs)
    with pytest.raises(ValueError, match="versus_refs"):
        search_gamma(pairwise, versus[:, :2])
    with pytest.raises(ValueError, match="exhaustive"):
        search_gamma(np.full((1, 8, 8), 50.0), np.full((1, 8), 40.0), method="exhaustive")
    with pytest.raises(ValueError, match="references"):
        tune_gamma(kd_dirs, references="raw")


# ----------------------------------------------------------------------------- the command


def run_main(argv, capsys):
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exit:
        code = exit.code
    except BaseException:  # noqa: BLE001 -- shown as a user would see it
        traceback.print_exc()
        code = "raised"
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_command_prints_a_table_and_writes_the_json(kd_dirs, tmp_path, capsys):
    out = tmp_path / "res" / "gamma.json"
    code, stdout, stderr = run_main(["proxies", "tune-gamma", "--kd", kd_dirs[0], "--kd", kd_dirs[1],
                                     "--step", "0.5", "--out", out], capsys)
    assert code == 0, stderr
    assert "tune-gamma:" in stderr  # progress messages, unless --quiet
    report = json.loads(out.read_text(encoding="utf-8"))
    tuning = tune_gamma(kd_dirs, step=0.5)
    assert report == json.loads(json.dumps(tuning.to_dict()))
    assert report["split"] == "valid" and report["beta"] == 0.2 and report["eq21_includes_self"] is True
    assert [c["name"] for c in report["candidates"]] == ["teacher0", "teacher1", "raw"]
    assert report["best"]["gamma"] == [c["gamma"] for c in report["candidates"]]
    assert report["best"]["l_target"] <= report["all_ones"]["l_target"] + 1e-12
    assert report["bleu_signature"].startswith("BLEU|nrefs:1|case:mixed|eff:yes|tok:13a|smooth:exp")
    for word in ("BLEU×β", "BLEU in points", "L_target", "teacher0", "raw", "γ = all ones", "oracle"):
        assert word in stdout
    assert f"wrote {out}" in stdout

    code, stdout, stderr = run_main(["proxies", "tune-gamma", "--kd", kd_dirs[0], "--kd", kd_dirs[1],
                                     "--step", "0.5", "--range", "1", "2", "--search", "coordinate",
                                     "--references", "extra", "--beta", "0.1", "--out", out, "--quiet"], capsys)
    assert code == 0, stderr
    assert stderr == ""
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["search"]["method"] == "coordinate" and report["search"]["range"] == [1.0, 2.0]
    assert report["references"] == "extra" and report["beta"] == 0.1
    assert all(1.0 <= g <= 2.0 for g in report["best"]["gamma"])


def test_command_accepts_a_candidate_directory(tmp_path, capsys):
    cand = tmp_path / "cand"
    for i, outputs in enumerate(TEACHERS):
        write_kd(cand / f"kd{i}", outputs)
    write_candidates_manifest(cand, [{"name": f"teacher-{i}", "dir": f"kd{i}"} for i in range(2)])
    out = tmp_path / "g.json"
    code, _, stderr = run_main(["proxies", "tune-gamma", "--kd", cand, "--out", out, "--quiet"], capsys)
    assert code == 0, stderr
    report = json.loads(out.read_text())
    assert [c["name"] for c in report["candidates"]] == ["teacher-0", "teacher-1", "raw"]
    assert [c["directory"] for c in report["candidates"]] == [str(cand / "kd0"), str(cand / "kd1"), None]


BAD = [
    ("missing-kd", ["--kd", "{tmp}/absent"], r"--kd.*does not exist"),
    ("not-a-kd-dir", ["--kd", "{tmp}"], r"--kd.*not a KD dataset directory"),
    ("no-kd", [], r"required: --kd"),
    ("range-reversed", ["--kd", "{a}", "--range", "3", "1"], r"--range.*LOW <= HIGH"),
    ("range-negative", ["--kd", "{a}", "--range", "-1", "3"], r"--range.*>= 0"),
    ("range-one-value", ["--kd", "{a}", "--range", "1"], r"--range"),
    ("range-nan", ["--kd", "{a}", "--range", "nan", "3"], r"--range"),
    ("step-0", ["--kd", "{a}", "--step", "0"], r"--step.*> 0"),
    ("step-tiny", ["--kd", "{a}", "--step", "1e-9"], r"--range/--step.*values per weight"),
    ("beta-0", ["--kd", "{a}", "--beta", "0"], r"--beta.*> 0"),
    ("beta-word", ["--kd", "{a}", "--beta", "big"], r"--beta"),
    ("search-bogus", ["--kd", "{a}", "--search", "random"], r"--search"),
    ("references-bogus", ["--kd", "{a}", "--references", "raw"], r"--references"),
    ("missing-split", ["--kd", "{a}", "--split", "test"], r"has no test\.src"),
    ("twice", ["--kd", "{a}", "--kd", "{a}"], r"named twice"),
    ("other-data", ["--kd", "{a}", "--kd", "{other}"], r"other: line 1 of valid\.src differs"),
    ("exhaustive-too-large", ["--kd", "{a}", "--search", "exhaustive", "--step", "0.0002"],
     r"--search exhaustive.*points"),
    ("extra-without-extra-references", ["--kd", "{bare}", "--references", "extra"],
     r"--references extra.*no sentence"),
    ("out-directory", ["--kd", "{a}", "--out", "{tmp}"], r"--out.*directory"),
    ("no-action", None, r"ACTION"),
]


@pytest.mark.parametrize("args, pattern", [pytest.param(a, p, id=name) for name, a, p in BAD])
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, args, pattern):
    a = write_kd(tmp_path / "a", TEACHERS[0])
    write_kd(tmp_path / "other", TEACHERS[1], sources=["x"] + SOURCES[1:])
    write_kd(tmp_path / "bare", TEACHERS[1], extra=[])
    out = tmp_path / "new" / "out.json"
    if args is None:
        argv = ["proxies"]
    else:
        argv = ["proxies", "tune-gamma", *[x.format(tmp=tmp_path, a=a, other=tmp_path / "other", bare=tmp_path / "bare") for x in args]]
        if "--out" not in args:
            argv += ["--out", str(out)]
    code, stdout, stderr = run_main(argv, capsys)
    assert "Traceback" not in stdout + stderr, stderr
    assert code == 2, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert re.match(r"mple proxies( tune-gamma)?: error: ", lines[0]), lines[0]
    assert re.search(pattern, lines[0]), lines[0]
    assert not out.exists() and not out.parent.exists()


def test_documented_option_defaults_are_the_parsers():
    """docs/proxies.md's table of tune-gamma options gives the defaults the command uses."""
    from mple_metrics.cli import _subparsers, build_parser

    parser = next(sub for sub in _subparsers(build_parser()) if sub.prog == "mple proxies tune-gamma")
    defaults = {option: action.default for action in parser._actions for option in action.option_strings}
    docs = (Path(__file__).resolve().parents[1] / "docs" / "proxies.md").read_text(encoding="utf-8")
    section = docs[docs.index("## Tuning γ for dynamic KD"):]
    rows = re.findall(r"^\| `(--[a-z-]+)[^`]*` \| ([^|]+) \|", section, flags=re.MULTILINE)
    checked = 0
    for option, documented in rows:
        documented = documented.strip().strip("`")
        if documented in ("required", "off"):
            continue
        default = defaults[option]
        shown = " ".join(f"{v:g}" for v in default) if isinstance(default, list) else \
            f"{default:g}" if isinstance(default, float) else str(default)
        assert shown == documented, f"{option}: docs/proxies.md says {documented!r}, the parser {shown!r}"
        checked += 1
    assert checked >= 5  # --split, --beta, --range, --step, --references, --search


def test_dynamic_kd_training_refuses_a_candidate_directory_and_its_member(kd_dirs, tmp_path):
    """As tune-gamma does: one teacher's outputs may be only one candidate of dynamic KD."""
    from mple_metrics.data import Split
    from mple_metrics.proxies import read_target_text

    candidates = tmp_path / "cand"
    candidates.mkdir()
    for directory in kd_dirs:
        directory.rename(candidates / directory.name)
    write_candidates_manifest(candidates, [{"name": d.name, "dir": d.name} for d in kd_dirs])
    split = Split("valid", SOURCES, RAW)
    with pytest.raises(ValueError, match=r"--kd .*teacher0 is named twice"):
        read_target_text("dynamic-kd", [candidates, candidates / "teacher0"], split)
    with pytest.raises(ValueError, match=r"KD directory .*teacher0 is named twice"):
        read_kd_candidates([candidates, candidates / "teacher0"])  # tune-gamma's own check agrees
