"""Molecules with RDKit (optional extra `anymae[chem]`): validation, canonical SMILES, scaffold splits."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

import numpy as np

from anymae.errors import UserError

INSTALL = "pip install 'anymae[chem]'  (or: pip install rdkit==2026.9.1)"


def rdkit():
    """The rdkit.Chem module, with RDKit's own parse messages silenced (we report bad records)."""
    try:
        from rdkit import Chem, RDLogger
    except ImportError:
        raise UserError(f"molecules (SMILES) need RDKit, which is not installed; install it with: {INSTALL}") from None
    RDLogger.DisableLog("rdApp.*")
    return Chem


def sdf_molecules(stream, properties: bool = False) -> Iterator[tuple[str | None, str, dict[str, str]]]:
    """(SMILES, name, SD properties when asked) of each record of an SD file read from a binary
    stream, one molecule in memory at a time; SMILES None where RDKit cannot read the record."""
    Chem = rdkit()
    for mol in Chem.ForwardSDMolSupplier(stream):
        if mol is None:
            yield None, "", {}
            continue
        name = mol.GetProp("_Name") if mol.HasProp("_Name") else ""
        values = {key: mol.GetProp(key) for key in mol.GetPropNames()} if properties else {}
        yield Chem.MolToSmiles(mol), name, values


def canonical(smiles: str) -> str | None:
    """RDKit's canonical SMILES, or None when RDKit cannot parse the string."""
    Chem = rdkit()
    mol = Chem.MolFromSmiles(smiles) if smiles else None
    return None if mol is None else Chem.MolToSmiles(mol)


def scaffold(smiles: str) -> str:
    """The Bemis-Murcko scaffold as SMILES ('' for acyclic molecules)."""
    rdkit()
    from rdkit.Chem.Scaffolds import MurckoScaffold

    return MurckoScaffold.MurckoScaffoldSmiles(smiles=smiles, includeChirality=False)


def scaffold_splits(smiles: list[str], val: float = 0.1, test: float = 0.1) -> dict[str, np.ndarray]:
    """Deterministic scaffold split (as in MoleculeNet): molecules grouped by Bemis-Murcko
    scaffold, groups taken largest first (ties: first appearance) into train until it holds
    1 - val - test of the molecules, then val, then test. No scaffold is in two splits."""
    groups: dict[str, list[int]] = defaultdict(list)
    for i, s in enumerate(smiles):
        groups[scaffold(s)].append(i)
    ordered = sorted(groups.values(), key=lambda g: (-len(g), g[0]))
    n = len(smiles)
    train_cut, val_cut = (1.0 - val - test) * n, (1.0 - test) * n
    parts: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    for group in ordered:
        if len(parts["train"]) + len(group) <= train_cut:
            parts["train"] += group
        elif len(parts["train"]) + len(parts["val"]) + len(group) <= val_cut:
            parts["val"] += group
        else:
            parts["test"] += group
    return {name: np.sort(np.array(index, dtype=np.int64)) for name, index in parts.items()}
