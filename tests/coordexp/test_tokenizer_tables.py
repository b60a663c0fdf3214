"""Per-tokenizer tables (decoded pieces, coord ids) are built once and never go stale.

``coord.tokenizer_table`` keys a table by the tokenizer object and its vocabulary size;
these tests use fresh real Qwen tokenizers (``load_tokenizer`` returns a shared one that
must not be mutated).
"""

import gc

import pytest
from transformers import AutoTokenizer

from coordexp.format import coord
from coordexp.format.coord import coord_id_start, coord_token_ids, tokenizer_table
from coordexp.format.template import DECODE_KWARGS, decode_pieces


@pytest.fixture()
def fresh():
    tok = AutoTokenizer.from_pretrained(str(coord.qwen_tokenizer_dir()))
    tok.add_special_tokens({"additional_special_tokens": [coord.COORD_WILDCARD, *coord.coord_tokens()]})
    return tok


def test_pieces_equal_single_token_decodes(fresh):
    ids = fresh.encode('{"objects": [{"desc": "caf\u00e9 }{", "bbox_2d": [<|coord_1|>, <|coord_999|>]}]}<|im_end|>',
                       add_special_tokens=False) + [0, 151643, 151669]
    want = [fresh.decode([i], **DECODE_KWARGS) for i in ids]
    assert decode_pieces(fresh, ids) == want
    assert decode_pieces(fresh, ids) == want  # from the table this time
    assert decode_pieces(fresh, [fresh.convert_tokens_to_ids("<|coord_5|>")]) == ["<|coord_5|>"]


def test_an_added_token_rebuilds_the_tables(fresh):
    before = decode_pieces(fresh, list(range(100)))
    new_id = len(fresh)
    assert decode_pieces(fresh, [new_id]) == [fresh.decode([new_id], **DECODE_KWARGS)]  # unknown id: what decode says
    fresh.add_special_tokens({"additional_special_tokens": ["<|brand_new|>"]})
    assert decode_pieces(fresh, [new_id]) == ["<|brand_new|>"]  # not the piece cached before the add
    assert decode_pieces(fresh, list(range(100))) == before


def test_coord_ids_follow_the_tokenizer(fresh):
    assert coord_token_ids(fresh) == list(range(151670, 152670)) and coord_id_start(fresh) == 151670
    ids = coord_token_ids(fresh)
    ids.append(-1)  # a caller's list is its own
    assert len(coord_token_ids(fresh)) == 1000
    base = AutoTokenizer.from_pretrained(str(coord.qwen_tokenizer_dir()))  # no coord vocabulary
    with pytest.raises(coord.CoordTokenError):
        coord_token_ids(base)
    with pytest.raises(coord.CoordTokenError):  # a failed build caches nothing
        coord_id_start(base)
    base.add_special_tokens({"additional_special_tokens": [coord.COORD_WILDCARD, *coord.coord_tokens()]})
    assert coord_id_start(base) == 151670


def test_tables_are_per_object_and_die_with_it(fresh):
    calls = []
    tokenizer_table(fresh, "probe", lambda tok: calls.append(tok) or len(calls))
    assert tokenizer_table(fresh, "probe", lambda tok: calls.append(tok) or len(calls)) == 1
    other = AutoTokenizer.from_pretrained(str(coord.qwen_tokenizer_dir()))
    assert tokenizer_table(other, "probe", lambda tok: calls.append(tok) or len(calls)) == 2
    n = len(coord._TABLES)
    del other, calls
    gc.collect()
    assert len(coord._TABLES) == n - 1


def test_no_len_means_no_cache():
    class Bare:  # no len(): nothing to key a table on
        pass

    built = []
    for _ in range(2):
        tokenizer_table(Bare(), "x", lambda tok: built.append(1) or 1)
    assert built == [1, 1]
