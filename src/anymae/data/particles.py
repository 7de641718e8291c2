"""Particle-physics data generated with the Pythia 8 simulator (`anymae[hep]`: pythia8mc==8.317.2).

Generation is slow (tens of events per second per core), so it runs once, with fixed seeds,
in chunks of events spread over `--workers` processes, and is cached as a compressed `.npz` in
$ANYMAE_DATA (default ~/.cache/anymae): `anymae data prepare quark-gluon --jets N` or
`anymae data prepare higgs-like --events N`. Half of the samples are of each class.

quark-gluon (sets): pp at 14 TeV, Z -> neutrinos plus one parton; quark jets from
`WeakBosonAndParton:qg2gmZq`, gluon jets from `WeakBosonAndParton:qqbar2gmZg`,
`PhaseSpace:pTHatMin = 450`. Visible final-state particles are clustered with Pythia's SlowJet
(anti-kT, R = 0.4); the leading jet is kept when 500 < pT < 550 GeV and |y| < 1.7. Each jet is
the set of its constituents' (pT, y, phi, pdg id).

higgs-like (features, like UCI HIGGS): pp at 13 TeV; signal W H with H -> b b-bar and
W -> e/mu nu (`HiggsSM:ffbar2HW`); background semileptonic t t-bar (W+ -> e/mu nu, W- -> quarks).
An event needs one electron or muon with pT > 25 GeV, |eta| < 2.5 and two jets (anti-kT 0.4,
pT > 25 GeV, |eta| < 2.5, Delta R > 0.4 from the lepton). Features: lepton pT, eta, phi; missing
transverse momentum (the neutrinos' vector sum: truth level) and its phi; 4 leading jets x (pT,
eta, phi, b-tag: a b quark of pT > 10 GeV within Delta R 0.4, truth level); m_jj of the two
leading jets and m_bb of the two leading b-tagged jets. Absent jets and m_bb are NaN, which
become missing tokens.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
from pathlib import Path

import numpy as np

from anymae.data.carriers import cache_dir
from anymae.errors import UserError

PYTHIA = "pythia8mc==8.317.2"
INSTALL = f"pip install {PYTHIA}"
CHUNK = 50  # samples per task (each task has its own seed)
QUARK_GLUON = {
    "common": [
        "Beams:eCM = 14000.",
        "PhaseSpace:pTHatMin = 450.",
        "23:onMode = off",
        "23:onIfAny = 12 14 16",
        "WeakZ0:gmZmode = 2",
    ],
    0: ["WeakBosonAndParton:qg2gmZq = on"],  # quark
    1: ["WeakBosonAndParton:qqbar2gmZg = on"],  # gluon
}
HIGGS = {
    "common": ["Beams:eCM = 13000.", "24:onMode = off"],
    0: ["Top:gg2ttbar = on", "Top:qqbar2ttbar = on", "24:onPosIfAny = 11 13", "24:onNegIfAny = 1 2 3 4 5"],
    1: ["HiggsSM:ffbar2HW = on", "25:onMode = off", "25:onIfMatch = 5 -5", "24:onIfAny = 11 13"],  # signal
}
HIGGS_FEATURES = (
    "lepton_pt lepton_eta lepton_phi met met_phi "
    + " ".join(f"jet{i}_{v}" for i in range(1, 5) for v in ("pt", "eta", "phi", "btag"))
    + " m_jj m_bb"
).split()


# The generated sets: name -> (generator, samples `anymae data install` makes). The 1k sets are the
# published bench's; the 20k sets the larger corpora of the compute bench (benchmarks/scaling_bench.sh).
# They share chunks (the same seeds come first), so a 20k run reuses a 1k run's.
SETS = {
    "quark-gluon": ("quark-gluon", 1000),
    "higgs-like": ("higgs-like", 1000),
    "quark-gluon-20k": ("quark-gluon", 20000),
    "higgs-like-20k": ("higgs-like", 20000),
}


def cache_path(name: str) -> Path:
    return cache_dir() / f"{name}.npz"


@contextlib.contextmanager
def quiet_stdout():
    """Pythia and its jet code print banners from C++: send file descriptor 1 to /dev/null."""
    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(devnull)
        os.close(saved)


def pythia8():
    try:
        import pythia8mc
    except ImportError:
        raise UserError(f"generating particle data needs Pythia 8; install it with: {INSTALL}") from None
    return pythia8mc


def start_pythia(settings: list[str], seed: int):
    p8 = pythia8()
    pythia = p8.Pythia("", False)
    for setting in [
        *settings,
        "Next:numberCount = 0",
        "Print:quiet = on",
        "Random:setSeed = on",
        f"Random:seed = {seed}",
    ]:
        if not pythia.readString(setting):
            raise RuntimeError(f"Pythia rejected the setting '{setting}'")
    if not pythia.init():
        raise RuntimeError("Pythia failed to initialise")
    return p8, pythia


def quark_gluon_jets(label: int, n: int, seed: int) -> list[np.ndarray]:
    """`n` leading jets of one class, each an array (constituents, 4) of (pT, y, phi, id)."""
    with quiet_stdout():
        p8, pythia = start_pythia(QUARK_GLUON["common"] + QUARK_GLUON[label], seed)
        jets = p8.SlowJet(-1, 0.4, 20.0, 5.0, 2, 1)  # anti-kT, R = 0.4, visible final state, massless
        found: list[np.ndarray] = []
        while len(found) < n:
            if not pythia.next():
                continue
            jets.analyze(pythia.event)
            if jets.sizeJet() == 0 or not (500.0 < jets.pT(0) < 550.0 and abs(jets.y(0)) < 1.7):
                continue
            event = pythia.event
            particles = [(event[i].pT(), event[i].y(), event[i].phi(), event[i].id()) for i in jets.constituents(0)]
            found.append(np.array(particles, dtype=np.float32))
    return found


def delta_r(eta1: float, phi1: float, eta2: float, phi2: float) -> float:
    dphi = (phi1 - phi2 + math.pi) % (2 * math.pi) - math.pi
    return math.hypot(eta1 - eta2, dphi)


def pair_mass(a, b) -> float:
    e, px, py, pz = (a[k] + b[k] for k in range(4))
    return math.sqrt(max(e * e - px * px - py * py - pz * pz, 0.0))


def higgs_events(label: int, n: int, seed: int) -> list[np.ndarray]:
    """`n` selected events of one class, each a row of the features in HIGGS_FEATURES."""
    with quiet_stdout():
        p8, pythia = start_pythia(HIGGS["common"] + HIGGS[label], seed)
        clustering = p8.SlowJet(-1, 0.4, 25.0, 2.5, 2, 1)
        found: list[np.ndarray] = []
        while len(found) < n:
            if not pythia.next():
                continue
            event = pythia.event
            leptons, mex, mey, bquarks = [], 0.0, 0.0, []
            for i in range(event.size()):
                p = event[i]
                if p.isFinal() and p.idAbs() in (11, 13) and p.pT() > 25.0 and abs(p.eta()) < 2.5:
                    leptons.append(p)
                elif p.isFinal() and p.idAbs() in (12, 14, 16):
                    mex, mey = mex + p.px(), mey + p.py()
                elif p.idAbs() == 5 and p.pT() > 10.0:
                    bquarks.append((p.eta(), p.phi()))
            if not leptons:
                continue
            lepton = max(leptons, key=lambda p: p.pT())
            clustering.analyze(event)
            jets = []
            for j in range(clustering.sizeJet()):
                v = clustering.p(j)
                eta, phi = v.eta(), v.phi()
                if delta_r(eta, phi, lepton.eta(), lepton.phi()) < 0.4:
                    continue
                btag = float(any(delta_r(eta, phi, be, bp) < 0.4 for be, bp in bquarks))
                jets.append((v.pT(), eta, phi, btag, (v.e(), v.px(), v.py(), v.pz())))
            if len(jets) < 2:
                continue
            row = [lepton.pT(), lepton.eta(), lepton.phi(), math.hypot(mex, mey), math.atan2(mey, mex)]
            for k in range(4):
                row += list(jets[k][:4]) if k < len(jets) else [math.nan] * 4
            tagged = [jet for jet in jets if jet[3]]
            row += [
                pair_mass(jets[0][4], jets[1][4]),
                pair_mass(tagged[0][4], tagged[1][4]) if len(tagged) > 1 else math.nan,
            ]
            found.append(np.array(row, dtype=np.float32))
    return found


def pack_sets(samples: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Sets: all elements in `x`, the size of each set in `counts`."""
    return {"x": np.concatenate(samples), "counts": np.array([len(s) for s in samples])}


def pack_rows(samples: list[np.ndarray]) -> dict[str, np.ndarray]:
    return {"x": np.stack(samples), "names": np.array(HIGGS_FEATURES)}


GENERATORS = {  # name: (generate one class, settings, class names, pack into arrays)
    "quark-gluon": (quark_gluon_jets, QUARK_GLUON, ("quark", "gluon"), pack_sets),
    "higgs-like": (higgs_events, HIGGS, ("ttbar", "WH"), pack_rows),
}


def _task(args: tuple[str, int, int, int, str]) -> tuple[int, list[np.ndarray]]:
    """One chunk of one class, kept in the chunk folder as it finishes (a rerun after a kill skips it)."""
    name, label, count, seed, folder = args
    done = Path(folder) / f"{label}-{seed}-{count}.npz"
    if done.exists():
        with np.load(done) as arrays:
            return label, [arrays[f"arr_{i}"] for i in range(len(arrays.files))]
    samples = GENERATORS[name][0](label, count, seed)
    temporary = done.with_name(done.stem + ".tmp.npz")
    np.savez(temporary, *samples)
    os.replace(temporary, done)
    return label, samples


def prepare(name: str, n: int, seed: int = 1, workers: int = 1, out: Path | None = None) -> Path:
    """Generate n samples (half of each class) and cache them; returns the cache file.

    Each chunk has its own seed and is kept in GENERATOR-seedS.chunks/ beside OUT as it finishes: an
    interrupted run goes on from the chunks it has, and a larger n reuses a smaller run's chunks (the same
    seeds come first)."""
    from tqdm import tqdm

    pythia8()
    if n < 2:
        raise UserError("generate at least 2 samples")
    generator = SETS[name][0]
    out = out or cache_path(name)
    chunks = out.with_name(f"{generator}-seed{seed}.chunks")
    chunks.mkdir(parents=True, exist_ok=True)
    tasks = []
    for label in (0, 1):
        todo = n // 2 + (n % 2 if label == 0 else 0)
        for k, start in enumerate(range(0, todo, CHUNK)):
            tasks.append((generator, label, min(CHUNK, todo - start), seed * 10000 + label * 5000 + k + 1, str(chunks)))
    results: dict[int, list[np.ndarray]] = {0: [], 1: []}
    with tqdm(total=n, desc=name, unit="sample", disable=None) as bar:
        if workers > 1:
            import multiprocessing

            with multiprocessing.get_context("spawn").Pool(workers) as pool:
                for label, samples in pool.imap(_task, tasks):
                    results[label] += samples
                    bar.update(len(samples))
        else:
            for task in tasks:
                label, samples = _task(task)
                results[label] += samples
                bar.update(len(samples))
    samples = results[0] + results[1]
    _, settings, classes, pack = GENERATORS[generator]
    meta = {"generator": PYTHIA, "settings": {str(k): v for k, v in settings.items()}, "classes": classes, "seed": seed}
    arrays = {"y": np.array([0] * len(results[0]) + [1] * len(results[1])), "meta": np.array(json.dumps(meta))}
    arrays.update(pack(samples))
    out.parent.mkdir(parents=True, exist_ok=True)
    temporary = out.with_name(out.name + ".tmp.npz")
    np.savez_compressed(temporary, **arrays)
    os.replace(temporary, out)
    return out


def jet_coordinates(constituents: np.ndarray) -> np.ndarray:
    """(pT, y, phi, id) -> (log of the pT share, y and phi relative to the pT-weighted axis, id)."""
    pt, y, phi, pid = constituents.T
    axis_y = np.average(y, weights=pt)
    axis_phi = np.angle(np.average(np.exp(1j * phi), weights=pt))
    dphi = (phi - axis_phi + np.pi) % (2 * np.pi) - np.pi
    return np.stack([np.log(pt / pt.sum()), y - axis_y, dphi, pid], axis=1).astype(np.float32)
