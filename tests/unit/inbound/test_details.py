"""An approval's stated details against the transfer's (reader.details): pure, no database."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transferbot.inbound.reader.details import TransferNames, mismatch, normalise, same_name, stated

TO_R2 = TransferNames("direct-to-reseller", "Analytics Pro", "Acme Corp", "Vendor Inc", "", "Reseller Two")
R1_TO_R2 = TransferNames("reseller-change", "Analytics Pro", "Kraft-Werke GmbH", "Vendor Inc", "Reseller One",
                         "Reseller Two")
R1_TO_DIRECT = TransferNames("reseller-to-direct", "Analytics Pro", "Lumière SARL", "Vendor Inc", "Reseller One", "")


@pytest.mark.parametrize(("text", "names", "slot", "named"), [
    ("Approved, please go ahead with the move to Reseller One Ltd.", TO_R2, "to", "Reseller One Ltd."),
    ("Approved – transfer to Northwind Partners.", TO_R2, "to", "Northwind Partners"),
    ("We approve the move to reseller Northwind.", TO_R2, "to", "reseller Northwind"),
    ("Approved\nNew reseller: Reseller One", TO_R2, "to", "Reseller One"),
    ("Approved. Product: Storage Plus", TO_R2, "product", "Storage Plus"),
    ("Approved\nCustomer: Globex", TO_R2, "customer", "Globex"),
    ("Approved: move to direct", TO_R2, "to", "direct"),
    ("Approved, switching from Reseller Two to Reseller One", R1_TO_R2, "from", "Reseller Two"),
    ("Approved, the move back to Reseller One is fine", R1_TO_R2, "to", "Reseller One"),
    ("Approved, please move us to Reseller Two", R1_TO_DIRECT, "to", "Reseller Two"),
    ("Approuvé, transfert vers le revendeur Reseller One.", TO_R2, "to", "revendeur Reseller One"),
    ("J'approuve le passage chez Northwind SAS.", TO_R2, "to", "Northwind SAS"),
    ("Genehmigt – Wechsel zu Reseller One GmbH.", TO_R2, "to", "Reseller One GmbH"),
    ("Genehmigt, Übertragung an den Händler Northwind.", TO_R2, "to", "Händler Northwind"),
    ("Aprobado, traspaso a Reseller One S.A.", TO_R2, "to", "Reseller One S.A."),
    ("Approvato, passaggio a Northwind S.p.A.", TO_R2, "to", "Northwind S.p.A."),
    ("Goedgekeurd, overstap naar Reseller One B.V.", TO_R2, "to", "Reseller One B.V."),
    ("Aprovado, transferência para Reseller One Lda.", TO_R2, "to", "Reseller One Lda."),
])
def test_a_stated_detail_of_another_move_is_a_mismatch(text: str, names: TransferNames, slot: str,
                                                        named: str) -> None:
    found = mismatch(stated(text), names)
    assert found is not None, text
    assert (found.slot, found.named) == (slot, named)
    assert found.words and found.words in text


@pytest.mark.parametrize(("text", "names"), [
    ("Approved, please go ahead with the move to Reseller Two.", TO_R2),
    ("Approved – transfer to RESELLER TWO GmbH as agreed.", TO_R2),
    ("We approve the transfer of Analytics Pro to Reseller Two Inc.", TO_R2),
    ("Approved, move it to the next step.", TO_R2),
    ("Approved, thanks to Bob.", TO_R2),
    ("Approved\nNew reseller: Reseller Two\nProduct: Analytics Pro\nCustomer: ACME Corp.", TO_R2),
    ("Approved. Moves to: bought through the reseller Reseller Two", TO_R2),
    ("Approved, switching from direct to Reseller Two", TO_R2),
    ("Approved, switching from Reseller One to Reseller Two", R1_TO_R2),
    ("Approved: moving back to buying directly from Vendor Inc", R1_TO_DIRECT),
    ("Approved: moving from Reseller One to direct", R1_TO_DIRECT),
    ("Approuvé, transfert d'Analytics Pro chez Reseller Two.", TO_R2),
    ("Approuvé, changement de revendeur vers Reseller Two S.A.R.L.", TO_R2),
    ("Genehmigt – Wechsel zum Monatsende.", TO_R2),
    ("Genehmigt – Übertragung von Kraft-Werke zu Reseller Two AG.", R1_TO_R2),
    ("Einverstanden mit dem Wechsel vom Händler Reseller One zum Händler Reseller Two.", R1_TO_R2),
    ("Goedgekeurd, overstap naar Reseller Two.", TO_R2),
    ("Aprovado, transferência para a Reseller Two.", TO_R2),
])
def test_this_transfers_details_or_no_names_are_no_mismatch(text: str, names: TransferNames) -> None:
    assert mismatch(stated(text), names) is None, stated(text)


@pytest.mark.parametrize(("a", "b"), [
    ("Reseller Two GmbH", "reseller two"), ("Lumière S.A.R.L.", "LUMIERE"), ("Kraft-Werke GmbH & Co. KG", "Kraft-Werke"),
    ("The Reseller Two Ltd.", "Reseller Two"), ("Acme Corp", "ACME Corporation"), ("Northwind B.V.", "northwind bv"),
])
def test_names_compare_without_case_accents_articles_or_legal_suffixes(a: str, b: str) -> None:
    assert same_name(a, b) and same_name(b, a)


def test_different_names_differ() -> None:
    assert not same_name("Reseller One", "Reseller Two")
    assert not same_name("Northwind", "Southwind GmbH")
    assert normalise("Reseller Two GmbH") == ("reseller", "two")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_any_text_states_only_bounded_details_and_never_raises(text: str) -> None:
    found = stated(text)
    assert all(s.slot in ("to", "from", "product", "customer") for s in found)
    mismatch(found, TO_R2)
