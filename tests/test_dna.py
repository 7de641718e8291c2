"""DNA: tokens as DNA users expect (case, N, k-mers), users' FASTA files, the dinucleotide shuffle,
the locus clusters, and the dm3 built-ins (split so that no sequence straddles splits)."""

from __future__ import annotations

import gzip
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anymae.cli import main
from anymae.config import DataConfig
from anymae.data import load_dataset
from anymae.data.catalog import BUILTINS
from anymae.data.dna import clusters, dinucleotide_shuffle, locus
from anymae.errors import UserError
from anymae.tokens import DnaSequence, spec_from_dict, spec_to_dict

TINY = ["model.dim=32", "model.depth=2", "model.decoder_dim=32", "model.decoder_depth=1", "train.batch_size=8"]


def test_lower_case_is_the_same_base_and_n_is_no_token():
    spec = DnaSequence(max_tokens=8)
    tokens = spec.tokenize(["ACGTNacg", "acgtnACG"])
    assert (tokens.inputs[0] == tokens.inputs[1]).all()
    assert tokens.inputs[0].tolist() == [1, 2, 3, 4, 0, 1, 2, 3]
    assert tokens.valid[0].tolist() == [True] * 4 + [False] + [True] * 3  # the slot stays: positions hold
    assert spec.vocab_size == 5


def test_kmers_are_non_overlapping_and_count_against_max_tokens():
    spec = DnaSequence(max_tokens=3, kmer=2)
    tokens = spec.tokenize(["ACGTNAGGT", "TTT"])
    # AC = 0*4+1, GT = 2*4+3, NA invalid; a fourth 2-mer (GG) is cut by max_tokens=3
    assert tokens.inputs[0].tolist() == [2, 12, 0] and tokens.valid[0].tolist() == [True, True, False]
    assert tokens.valid[1].tolist() == [True, False, False]  # a last part shorter than k is dropped
    assert spec.vocab_size == 17 and spec.token_text(2) == "AC" and spec.token_text(0) == "NN"


def test_every_kmer_id_prints_back_as_its_bases():
    spec = DnaSequence(max_tokens=64, kmer=3)
    words = [spec.token_text(i) for i in range(1, spec.vocab_size)]
    assert len(set(words)) == 64
    tokens = spec.tokenize(["".join(words)])
    assert tokens.inputs[0].tolist() == list(range(1, 65))


def test_a_kmer_spec_survives_a_checkpoint_round_trip():
    spec = DnaSequence(max_tokens=10, kmer=4)
    assert spec_from_dict(spec_to_dict(spec)) == spec


@pytest.mark.parametrize("kmer", [0, 7])
def test_kmer_out_of_range_is_one_line(kmer, tmp_path, capsys):
    argv = ["pretrain", "--data", "digits", "--out", str(tmp_path / "r"), f"data.kmer={kmer}"]
    assert main(argv) == 2
    assert "data.kmer must be bases per DNA token, 1..6" in capsys.readouterr().err


def test_kmer_on_other_data_is_refused(tmp_path):
    path = tmp_path / "p.fasta"
    path.write_text(">a\nMKVLAAGIW\n>b\nMKKLLPQW\n")
    with pytest.raises(UserError, match="data.kmer=2 applies to DNA only"):
        load_dataset(DataConfig(name=str(path), kmer=2))
    with pytest.raises(UserError, match="data.kmer applies to DNA only"):
        load_dataset(DataConfig(name="digits", kmer=2))


def test_a_users_gzipped_dna_fasta_trains_with_kmers(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "reads.fa.gz"
    with gzip.open(path, "wt") as f:
        for i in range(40):
            f.write(f">r{i}\n{''.join(rng.choice(list('acgtACGT'), 60))}\n")
    out = tmp_path / "run"
    assert main(["pretrain", "--data", str(path), "--steps", "2", "--out", str(out), "data.kmer=3", *TINY]) == 0
    dataset = load_dataset(DataConfig(name=str(path), kmer=3))
    assert dataset.spec == DnaSequence(max_tokens=256, kmer=3) and dataset.tokens.valid.sum(1).tolist() == [20] * 40


def test_protein_letters_under_modality_dna_are_one_line(tmp_path, capsys):
    path = tmp_path / "mixed.fasta"
    path.write_text(">ok\nACGTACGT\n>bad\nACGT\nACQT\n")
    assert main(["pretrain", "--data", str(path), "--modality", "dna", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "line 5: record 'bad': letter 'Q' at column 3 is not in the dna alphabet" in err
    assert err.count("\n") == 1 and "Traceback" not in err


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet="ACGTN", min_size=0, max_size=80), st.integers(0, 2**32 - 1))
def test_the_dinucleotide_shuffle_keeps_every_dinucleotide_count(sequence, seed):
    shuffled = dinucleotide_shuffle(sequence, np.random.default_rng(seed))
    assert len(shuffled) == len(sequence) and Counter(shuffled) == Counter(sequence)
    assert Counter(zip(shuffled, shuffled[1:])) == Counter(zip(sequence, sequence[1:]))
    assert shuffled[:1] == sequence[:1] and shuffled[-1:] == sequence[-1:]


def test_the_shuffle_destroys_the_order_and_is_seeded():
    sequence = "".join(np.random.default_rng(1).choice(list("ACGT"), 500))
    a, b = (dinucleotide_shuffle(sequence, np.random.default_rng(7)) for _ in range(2))
    assert a == b != sequence
    assert dinucleotide_shuffle(sequence, np.random.default_rng(8)) != a


def test_overlapping_regions_on_either_strand_share_a_cluster():
    ids = [
        f"NM_{i}_up_2000_{chrom}_{start}_{strand}"
        for i, (chrom, start, strand) in enumerate(
            [("chr2L", 100, "f"), ("chr2L", 1500, "r"), ("chr2L", 3499, "f"), ("chr2L", 6000, "f"), ("chr3R", 100, "f")]
        )
    ]
    groups = clusters([locus(i) for i in ids], [2000] * len(ids))
    assert groups[0] == groups[1] == groups[2]  # 100-2099 overlaps 1500-3499, which overlaps 3499-5498
    assert len({groups[0], groups[3], groups[4]}) == 3
    assert locus("NM_164313_up_2000_chr3R_-1646_f") == ("chr3R", -1646)
    with pytest.raises(UserError, match="no chromosome_start_strand"):
        locus("NM_1_up_2000")


@pytest.mark.skipif(not BUILTINS["dm3-shuffle"].ready(), reason="anymae data install dm3-shuffle")
def test_dm3_task_and_corpus_never_share_a_sequence_across_splits():
    config = DataConfig(name="dm3-shuffle", max_tokens=1000)
    task = load_dataset(config)
    corpus = load_dataset(DataConfig(name="dm3-upstream", max_tokens=1000))
    assert len(task) == 10000 and task.notes["classes"] == ["shuffled", "real"]
    spec = task.spec

    def texts(dataset, split):
        tokens = dataset.tokens
        return {spec.to_text(tokens.inputs[i], tokens.valid[i]) for i in dataset.splits[split]}

    for index in task.splits.values():
        assert task.labels[index].sum() * 2 == len(index)  # each real window with its own shuffle
    assert not texts(corpus, "train") & (texts(task, "test") | texts(task, "val"))
    assert not texts(task, "train") & texts(task, "test")
    # 17,286 distinct sequences, two 1,000 bp windows each but one of 353 bp
    assert len(corpus) == 17286 * 2 - 1 and sum(map(len, corpus.splits.values())) == len(corpus)
