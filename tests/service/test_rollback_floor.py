"""The rollback floor without a database: which contract revisions are refused, and the reports."""

from __future__ import annotations

import json
from typing import Any

import pytest

from service import migration_lint
from service.rollback_floor import (
    BLOCKED,
    MIGRATED,
    REPORT_LIMIT,
    ROLLBACK_TARGET,
    SERVING,
    Block,
    Contract,
    FloorConfigError,
    Protected,
    blocked_report,
    blocks,
    done_report,
    encode,
    parse_allow,
    parse_protect,
)

OLD = {"items": ["id", "name", "legacy"], "e2e_legacy": ["id"]}
NEW = {"items": ["id", "name", "sku_key"]}


def _entry(uses: dict[str, list[str]] | None, role: str = ROLLBACK_TARGET) -> Protected:
    return Protected(
        release="r1",
        image="items-service:1.0",
        role=role,
        uses=None if uses is None else {t: frozenset(c) for t, c in uses.items()},
    )


DROP_TABLE = Contract("0006", tables=("e2e_legacy",))
DROP_COLUMN = Contract("0006", columns=("items.legacy",))
DROP_OTHER_COLUMN = Contract("0006", columns=("items.gone",))
DROP_INDEX_ONLY = Contract("0006")  # indexes and constraints are not in Contract: not usages
NEEDS = Contract("0005", needs=("items.sku_key",))
NEEDS_TABLE = Contract("0006", needs=("service_secrets",))
BOTH = Contract("0006", columns=("items.legacy",), needs=("items.sku_key",))

# (case, contract, uses of the protected release, allow, blocked?, removes, needs, unknown)
CASES: list[
    tuple[
        str,
        Contract,
        dict[str, list[str]] | None,
        str,
        bool,
        tuple[str, ...],
        tuple[str, ...],
        bool,
    ]
] = [
    ("dropped table still used", DROP_TABLE, OLD, "", True, ("e2e_legacy",), (), False),
    ("dropped table no longer used", DROP_TABLE, NEW, "", False, (), (), False),
    ("dropped column still used", DROP_COLUMN, OLD, "", True, ("items.legacy",), (), False),
    ("dropped column no longer used", DROP_COLUMN, NEW, "", False, (), (), False),
    (
        "a column of a table it does not use",
        Contract("0006", columns=("other.legacy",)),
        OLD,
        "",
        False,
        (),
        (),
        False,
    ),
    ("another column of a used table", DROP_OTHER_COLUMN, OLD, "", False, (), (), False),
    ("only an index or constraint dropped", DROP_INDEX_ONLY, OLD, "", False, (), (), False),
    ("needed column missing", NEEDS, OLD, "", True, (), ("items.sku_key",), False),
    ("needed column present", NEEDS, NEW, "", False, (), (), False),
    ("needed table missing", NEEDS_TABLE, NEW, "", True, (), ("service_secrets",), False),
    (
        "removes and needs both fail",
        BOTH,
        OLD,
        "",
        True,
        ("items.legacy",),
        ("items.sku_key",),
        False,
    ),
    ("removes fine, needs fail", BOTH, {"items": ["id"]}, "", True, (), ("items.sku_key",), False),
    ("unknown uses and something to check", DROP_TABLE, None, "", True, ("e2e_legacy",), (), True),
    ("unknown uses, a need", NEEDS, None, "", True, (), ("items.sku_key",), True),
    ("unknown uses, nothing any uses could fail", DROP_INDEX_ONLY, None, "", False, (), (), False),
    ("allowed although still used", DROP_TABLE, OLD, "0006", False, (), (), False),
    ("allowed among others", DROP_TABLE, OLD, "0004, 0006,", False, (), (), False),
    ("another revision allowed", DROP_TABLE, OLD, "0007", True, ("e2e_legacy",), (), False),
    ("allowed with unknown uses", NEEDS, None, "0005", False, (), (), False),
]


@pytest.mark.parametrize(
    ("contract", "uses", "allow", "blocked", "removes", "needs", "unknown"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_which_contract_revisions_are_refused(
    contract: Contract,
    uses: dict[str, list[str]] | None,
    allow: str,
    blocked: bool,
    removes: tuple[str, ...],
    needs: tuple[str, ...],
    unknown: bool,
) -> None:
    found = blocks([contract], [_entry(uses)], parse_allow(allow))
    assert bool(found) == blocked
    if blocked:
        assert len(found) == 1
        assert (found[0].removes, found[0].needs, found[0].unknown) == (removes, needs, unknown)


def test_every_release_that_must_keep_working_counts_in_revision_order() -> None:
    target, serving = _entry(OLD), _entry(NEW, SERVING)
    found = blocks([NEEDS, DROP_TABLE], [serving, target], frozenset())
    assert [(b.revision, b.protected.role) for b in found] == [
        ("0005", ROLLBACK_TARGET),
        ("0006", ROLLBACK_TARGET),
    ]
    assert blocks([NEEDS, DROP_TABLE], [], frozenset()) == []


def test_the_why_names_revision_what_it_removes_who_reads_it_and_what_to_release() -> None:
    (block,) = blocks([DROP_TABLE], [_entry(OLD)], frozenset())
    why = block.why()
    assert why.startswith(
        "revision 0006 removes e2e_legacy, which release r1 "
        "(items-service:1.0), the rollback target, still uses; release an "
        "image that no longer uses e2e_legacy first"
    )
    assert "allow 0006" in why
    (need,) = blocks([NEEDS], [_entry(OLD, SERVING)], frozenset())
    assert (
        "needs items.sku_key, which release r1 (items-service:1.0), serving now, does not use"
        in need.why()
    )
    assert "release an image that uses items.sku_key first" in need.why()
    (unknown,) = blocks([NEEDS], [_entry(None)], frozenset())
    assert "recorded without the tables and columns it uses" in unknown.why()
    assert "release an image that reports its uses first" in unknown.why()
    for sentence in (why, need.why(), unknown.why()):
        assert sentence.count(". ") == 0
        assert "\n" not in sentence


def test_the_blocked_report_names_the_first_and_counts_the_rest() -> None:
    found = blocks([DROP_TABLE, BOTH], [_entry(OLD), _entry(None, SERVING)], frozenset())
    report = blocked_report(found)
    assert report == {
        "outcome": BLOCKED,
        "revision": "0006",
        "removes": ["e2e_legacy"],
        "needs": [],
        "image": "items-service:1.0",
        "release": "r1",
        "role": ROLLBACK_TARGET,
        "why": found[0].why(),
        "moreBlocked": 3,
    }
    assert blocked_report(found[1:2])["usesUnknown"] is True


def test_the_done_report_lists_what_no_older_image_may_use() -> None:
    report = done_report(
        MIGRATED, before="0004", head="0006", contracts=[NEEDS, DROP_TABLE, DROP_COLUMN], uses=NEW
    )
    assert report == {
        "outcome": MIGRATED,
        "from": "0004",
        "head": "0006",
        "uses": NEW,
        "removed": {"tables": ["e2e_legacy"], "columns": ["items.legacy"]},
        "needs": ["items.sku_key"],
        "contract": ["0005", "0006", "0006"],
    }


def _size(text: str) -> int:
    return len(text.encode())


def test_a_report_always_fits_a_termination_message() -> None:
    small = done_report(MIGRATED, before=None, head="0005", contracts=[NEEDS], uses=NEW)
    assert json.loads(encode(small)) == small
    assert " " not in encode(small).replace("sku_key first", "")  # compact
    huge_uses = {f"table_{i}": [f"column_{j}" for j in range(30)] for i in range(40)}
    big = done_report(MIGRATED, before=None, head="0005", contracts=[NEEDS], uses=huge_uses)
    decoded = json.loads(encode(big))
    assert _size(encode(big)) < REPORT_LIMIT
    assert "uses" not in decoded
    assert decoded["usesTruncated"] is True
    assert decoded["removed"] == big["removed"]
    assert decoded["contract"] == ["0005"]
    many = [
        Contract(f"{i:04}", tables=(f"t{i}" * 20,), columns=(f"t{i}.c" * 20,)) for i in range(200)
    ]
    worst = done_report(MIGRATED, before=None, head="0200", contracts=many, uses=huge_uses)
    assert _size(encode(worst)) < REPORT_LIMIT
    assert json.loads(encode(worst))["truncated"] is True
    long_why: dict[str, Any] = {"outcome": BLOCKED, "why": "x" * 10_000}
    assert _size(encode(long_why)) < REPORT_LIMIT
    assert json.loads(encode(long_why))["outcome"] == BLOCKED
    assert _size(encode(worst, limit=60)) < 60  # at worst, the outcome alone


def test_protect_is_parsed_strictly() -> None:
    raw = json.dumps(
        [
            {
                "release": "abc",
                "image": "i:1",
                "role": ROLLBACK_TARGET,
                "uses": {"items": ["id"]},
                "extra": "ignored",
            },
            {"release": "def", "image": "i:0", "role": SERVING, "uses": None},
        ]
    )
    assert parse_protect(raw) == (
        Protected("abc", "i:1", ROLLBACK_TARGET, {"items": frozenset({"id"})}),
        Protected("def", "i:0", SERVING, None),
    )
    assert parse_protect("") == ()
    assert parse_protect("  ") == ()


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ("{", "not JSON"),
        ('{"release": "a"}', "must be a JSON list"),
        ('["a"]', "[0] must be an object"),
        ('[{"image": 3}]', "image must be a string"),
        ('[{"role": "serving"}]', "neither a release nor an image"),
        ('[{"image": "i", "uses": ["items"]}]', "uses must be null"),
        ('[{"image": "i", "uses": {"items": "id"}}]', "uses must be null"),
    ],
)
def test_malformed_protect_is_an_error_not_an_empty_floor(raw: str, says: str) -> None:
    with pytest.raises(FloorConfigError, match=says.replace("[", r"\[").replace("]", r"\]")):
        parse_protect(raw)


def test_this_repository_plans_0005_as_needing_sku_key() -> None:
    revisions = migration_lint.analyse()
    plan = migration_lint.plan(revisions, "0005", {})
    assert [Contract.from_plan(e) for e in plan["contract"]] == [NEEDS]
    assert migration_lint.needs_problems(revisions, migration_lint.uses()) == []
    assert migration_lint.needs_problems(revisions, {"items": ["id"]}) == [
        "revision 0005 (0005_folded_text_keys.py): contract_needs names items.sku_key, which "
        "this image's models do not use"
    ]


def test_lineage_follows_down_revisions() -> None:
    revisions = migration_lint.analyse()
    assert migration_lint.lineage(revisions, None) == set()
    assert migration_lint.lineage(revisions, "0003") == {"0001", "0002", "0003"}
    assert (
        migration_lint.lineage(revisions, "0005") - migration_lint.lineage(revisions, "0004")
    ) == {"0005"}


def test_a_block_is_a_value() -> None:
    entry = _entry(OLD)
    assert Block("0006", entry, ("e2e_legacy",)) == blocks([DROP_TABLE], [entry], set())[0]
